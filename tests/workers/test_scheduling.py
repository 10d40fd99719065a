"""The sweeper's release of scheduled messages: at their SendAt, never before, into the right
first stage, with the status change recorded and its callback owed."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from schemas.db import session_scope
from schemas.models import Callback, Message, MessageEvent
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers.pipeline.scheduling import release_due
from workers.twoway.optouts import opt_out


def schedule(api_url: str, account: Account, send_at: datetime, **params: str) -> str:
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages", auth=account.auth,
        data={"To": random_number(), "From": account.number, "Body": "x", "ScheduleType": "fixed",
              "SendAt": send_at.isoformat(), "StatusCallback": "http://127.0.0.1:9/cb", **params},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["sid"])


def test_release_happens_at_send_at_and_not_a_second_before(api_url: str, account: Account) -> None:
    # given: an SMS and an MMS scheduled a distinct day ahead
    send_at = (datetime.now(UTC) + timedelta(days=20, seconds=7)).replace(microsecond=0)
    sms = schedule(api_url, account, send_at)
    mms = schedule(api_url, account, send_at, MediaUrl="http://127.0.0.1:9/a.jpg")
    # when
    with session_scope() as session:
        early = release_due(session, send_at - timedelta(seconds=1))
    with session_scope() as session:
        on_time = release_due(session, send_at)
    # then
    assert {sms, mms}.isdisjoint(early)
    assert {sms, mms} <= set(on_time)
    with session_scope() as session:
        rows = {sid: session.get(Message, sid) for sid in (sms, mms)}
        events = session.exec(
            select(MessageEvent.message_sid, MessageEvent.status).where(
                MessageEvent.message_sid.in_([sms, mms])  # type: ignore[attr-defined]
            )
        ).all()
        owed = session.exec(
            select(Callback.status).where(Callback.message_sid == sms)  # type: ignore[arg-type]
        ).all()
    assert {sid: (m.status, m.stage, m.next_attempt_at) for sid, m in rows.items() if m} == {
        sms: ("queued", "segment", send_at),
        mms: ("queued", "media", send_at),
    }
    assert sorted(events) == sorted(
        [(sms, "scheduled"), (sms, "queued"), (mms, "scheduled"), (mms, "queued")]
    )
    assert [row.status for row in owed] == ["queued"]


def test_a_released_message_is_not_released_twice(api_url: str, account: Account) -> None:
    send_at = (datetime.now(UTC) + timedelta(days=21, seconds=3)).replace(microsecond=0)
    sid = schedule(api_url, account, send_at)
    with session_scope() as session:
        first = release_due(session, send_at)
    with session_scope() as session:
        second = release_due(session, send_at)
    assert sid in first
    assert sid not in second


def test_cancel_racing_the_release_leaves_each_message_one_way(
    api_url: str, account: Account
) -> None:
    # given: twenty messages due at one time
    send_at = (datetime.now(UTC) + timedelta(days=22, seconds=11)).replace(microsecond=0)
    sids = [schedule(api_url, account, send_at) for _ in range(20)]

    def cancel(sid: str) -> int:
        return httpx.post(
            f"{api_url}/v1/Accounts/{account.sid}/Messages/{sid}",
            data={"Status": "canceled"}, auth=account.auth,
        ).status_code  # fmt: skip

    def release() -> list[str]:
        with session_scope() as session:
            return release_due(session, send_at)

    # when: the sweeper releases them while each is canceled (the release starts mid-way)
    with ThreadPoolExecutor(8) as pool:
        early = [pool.submit(cancel, sid) for sid in sids[:6]]
        early[0].result()
        released = pool.submit(release)
        late = [pool.submit(cancel, sid) for sid in sids[6:]]
        answers = {sid: f.result() for sid, f in zip(sids, early + late, strict=True)}
        released_sids = set(released.result())
    # then: canceled (200) or released (30409), never both; the events say the same
    with session_scope() as session:
        events = session.exec(
            select(MessageEvent.message_sid, MessageEvent.status)
            .where(MessageEvent.message_sid.in_(sids))  # type: ignore[attr-defined]
            .order_by(MessageEvent.id)  # type: ignore[arg-type]
        ).all()
    after = {sid: [status for s, status in events if s == sid] for sid in sids}
    for sid in sids:
        if answers[sid] == 200:
            assert after[sid] == ["scheduled", "canceled"], sid
            assert sid not in released_sids
        else:
            assert answers[sid] == 409
            assert after[sid] == ["scheduled", "queued"], sid
            assert sid in released_sids


def test_a_message_whose_recipient_opted_out_meanwhile_fails_with_21610(
    api_url: str, account: Account
) -> None:
    # given: a scheduled message, then its recipient texts STOP to the sender
    send_at = (datetime.now(UTC) + timedelta(days=22, seconds=5)).replace(microsecond=0)
    sid = schedule(api_url, account, send_at)
    with session_scope() as session:
        recipient = session.get(Message, sid).to  # type: ignore[union-attr]
        opt_out(session, account.sid, account.number, recipient, "keyword", utcnow())
        session.commit()
    # when: its time comes
    with session_scope() as session:
        released = release_due(session, send_at)
    # then: it was not released; it failed with 21610, and the failure is called back
    assert sid not in released
    with session_scope() as session:
        row = session.get(Message, sid)
        owed = session.exec(
            select(Callback.status).where(Callback.message_sid == sid)  # type: ignore[arg-type]
        ).all()
    assert row is not None
    assert (row.status, row.error_code, row.stage, row.next_attempt_at) == (
        "failed", 21610, "done", None
    )  # fmt: skip
    assert [row.status for row in owed] == ["failed"]
