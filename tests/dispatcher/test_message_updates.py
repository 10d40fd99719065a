"""Cancel, redact and delete through the real server and the twilio SDK, on both surfaces:
only in the statuses Twilio allows them, with every row that hangs off a deleted message gone."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, insert, select, update
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.models import (
    callback_attempts_table,
    callbacks_table,
    media_table,
    message_events_table,
    messages_table,
    receipts_table,
    segments_table,
)
from tests.processes import Account, random_number
from tests.twilio_schema import MEDIA, MESSAGE, assert_matches

m = messages_table.c
SURFACES = {"v1": "/v1/Accounts/{}/Messages", "twilio": "/2010-04-01/Accounts/{}/Messages"}


@pytest.fixture
def client(api_url: str, account: Account) -> Client:
    twilio = Client(account.sid, account.token)
    twilio.api.base_url = api_url
    return twilio


def scheduled(client: Client, account: Account) -> str:
    return str(
        client.messages.create(
            to=random_number(), from_=account.number, body="later", schedule_type="fixed",
            send_at=datetime.now(UTC) + timedelta(hours=2),
            status_callback="http://127.0.0.1:9/status",
        ).sid
    )  # fmt: skip


def settled(client: Client, account: Account, status: str = "delivered") -> str:
    """A message as the pipeline leaves it: two segments (stored at intake) with their applied
    receipts, one attachment, a callback with an attempt, its events; then in ``status``."""
    sid = str(
        client.messages.create(
            to=random_number(), from_=account.number, body="secret " * 30,
            status_callback="http://127.0.0.1:9/status",
        ).sid
    )  # fmt: skip
    now = datetime.now(UTC)
    with session_scope() as session:
        session.execute(
            update(messages_table).where(m.sid == sid)
            .values(status=status, stage="done", next_attempt_at=None, date_sent=now)
        )  # fmt: skip
        session.execute(
            update(segments_table).where(segments_table.c.message_sid == sid)
            .values(status="delivered", date_updated=now,
                    carrier_id=func.concat(sid, "-", segments_table.c.number))
        )  # fmt: skip
        session.execute(
            insert(receipts_table),
            [{"carrier_id": f"{sid}-{n}", "status": "delivered", "date_received": now,
              "applied_at": now} for n in (1, 2)],
        )  # fmt: skip
        session.execute(
            insert(media_table).values(
                sid=new_sid("ME"), message_sid=sid, account_sid=account.sid, position=0,
                source_url="http://127.0.0.1:9/a.png", content_type="image/png", size_bytes=3,
                sha256="0" * 64, content=b"png", date_created=now,
            )
        )  # fmt: skip
        callback_id = session.execute(
            insert(callbacks_table).values(
                message_sid=sid, account_sid=account.sid, url="http://127.0.0.1:9/status",
                status=status, params={}, webhook_id=f"{sid}.{status}", state="delivered",
                attempts=1, date_created=now, date_updated=now,
            ).returning(callbacks_table.c.id)
        ).scalar_one()  # fmt: skip
        session.execute(
            insert(callback_attempts_table).values(
                callback_id=callback_id, url="http://127.0.0.1:9/status", date_attempted=now,
                status_code=200, latency_ms=1.0,
            )
        )  # fmt: skip
        session.execute(
            insert(message_events_table).values(message_sid=sid, status=status, date_created=now)
        )
        session.commit()
    return sid


def rows_of(sid: str) -> dict[str, int]:
    """How many rows of each table hang off the message."""
    with session_scope() as session:
        callback_ids = select(callbacks_table.c.id).where(callbacks_table.c.message_sid == sid)
        count = {
            "messages": select(func.count()).where(m.sid == sid),
            "segments": select(func.count()).where(segments_table.c.message_sid == sid),
            "media": select(func.count()).where(media_table.c.message_sid == sid),
            "events": select(func.count()).where(message_events_table.c.message_sid == sid),
            "callbacks": select(func.count()).where(callbacks_table.c.message_sid == sid),
            "attempts": select(func.count()).where(
                callback_attempts_table.c.callback_id.in_(callback_ids)
            ),
            "receipts": select(func.count()).where(receipts_table.c.carrier_id.like(f"{sid}-%")),
        }
        return {name: session.execute(query).scalar_one() for name, query in count.items()}


def test_sdk_cancels_a_scheduled_message_and_owes_its_callback(
    client: Client, account: Account, api_url: str
) -> None:
    # given
    sid = scheduled(client, account)
    # when
    canceled = client.messages(sid).update(status="canceled")
    # then
    assert canceled.status == "canceled"
    raw = httpx.get(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages/{sid}.json", auth=account.auth
    ).json()
    assert_matches(raw, MESSAGE)
    with session_scope() as session:
        row = session.execute(select(m.stage, m.next_attempt_at).where(m.sid == sid)).one()
        owed = session.execute(
            select(callbacks_table.c.status, callbacks_table.c.params).where(
                callbacks_table.c.message_sid == sid
            )
        ).all()
    assert tuple(row) == ("done", None)
    assert [(status, params["MessageStatus"]) for status, params in owed] == [
        ("canceled", "canceled")
    ]


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_only_a_scheduled_message_can_be_canceled(
    api_url: str, client: Client, account: Account, surface: str
) -> None:
    # given: a queued message, and a scheduled one canceled already
    queued = client.messages.create(to=random_number(), from_=account.number, body="x").sid
    twice = scheduled(client, account)
    client.messages(twice).update(status="canceled")
    suffix = ".json" if surface == "twilio" else ""
    for sid in (queued, twice):
        # when
        response = httpx.post(
            f"{api_url}{SURFACES[surface].format(account.sid)}/{sid}{suffix}",
            data={"Status": "canceled"}, auth=account.auth,
        )  # fmt: skip
        # then
        assert (response.status_code, response.json()["code"]) == (409, 30409), response.text


def test_sdk_redacts_a_settled_message_and_its_segments(
    client: Client, account: Account, api_url: str
) -> None:
    # given
    sid = settled(client, account)
    # when
    redacted = client.messages(sid).update(body="")
    # then
    assert (redacted.body, redacted.status, redacted.num_segments) == ("", "delivered", "2")
    with session_scope() as session:
        texts = session.execute(
            select(segments_table.c.text).where(segments_table.c.message_sid == sid)
        ).scalars()
        assert list(texts) == ["", ""]
    assert rows_of(sid)["media"] == 1  # everything else is kept
    v1 = httpx.get(f"{api_url}/v1/Accounts/{account.sid}/Messages/{sid}", auth=account.auth)
    assert v1.json()["body"] == ""


@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest.mark.parametrize(
    ("params", "code", "status"),
    [
        ({"Body": ""}, 20009, 409),  # redact while queued
        ({"Body": "new text"}, 20001, 400),
        ({"Status": "sent"}, 20001, 400),
        ({}, 20001, 400),
        ({"Status": "canceled", "To": "+15005550006"}, 20001, 400),
    ],
)
def test_update_refusals(
    api_url: str, client: Client, account: Account, surface: str, params: dict, code: int,
    status: int,
) -> None:  # fmt: skip
    sid = client.messages.create(to=random_number(), from_=account.number, body="x").sid
    suffix = ".json" if surface == "twilio" else ""
    response = httpx.post(
        f"{api_url}{SURFACES[surface].format(account.sid)}/{sid}{suffix}", data=params,
        auth=account.auth,
    )  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


def test_sdk_deletes_a_settled_message_with_everything_that_hangs_off_it(
    client: Client, account: Account
) -> None:
    # given
    sid = settled(client, account, status="failed")
    assert rows_of(sid) == {"messages": 1, "segments": 2, "media": 1, "events": 2, "callbacks": 1,
                            "attempts": 1, "receipts": 2}  # fmt: skip
    # when
    deleted = client.messages(sid).delete()
    # then
    assert deleted is True
    assert set(rows_of(sid).values()) == {0}
    with pytest.raises(TwilioRestException) as missing:
        client.messages(sid).fetch()
    assert missing.value.status == 404


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_delete_is_refused_while_the_message_moves(
    api_url: str, client: Client, account: Account, surface: str
) -> None:
    # given: queued, scheduled, and settled but with a callback being delivered right now
    queued = client.messages.create(to=random_number(), from_=account.number, body="x").sid
    waiting = scheduled(client, account)
    calling = settled(client, account)
    with session_scope() as session:
        session.execute(
            update(callbacks_table)
            .where(callbacks_table.c.message_sid == calling)
            .values(state="delivering")
        )
        session.commit()
    suffix = ".json" if surface == "twilio" else ""
    for sid in (queued, waiting, calling):
        # when
        response = httpx.delete(
            f"{api_url}{SURFACES[surface].format(account.sid)}/{sid}{suffix}", auth=account.auth
        )
        # then
        assert (response.status_code, response.json()["code"]) == (409, 20009), response.text
        assert rows_of(sid)["messages"] == 1


def test_v1_delete_answers_204_without_a_body(
    api_url: str, client: Client, account: Account
) -> None:
    sid = settled(client, account, status="sent")
    url = f"{api_url}/v1/Accounts/{account.sid}/Messages/{sid}"
    response = httpx.delete(url, auth=account.auth)
    assert (response.status_code, response.content) == (204, b"")
    assert httpx.delete(url, auth=account.auth).status_code == 404


def test_another_account_cannot_change_or_delete_a_message(
    api_url: str, client: Client, account: Account, other_account: Account
) -> None:
    sid = settled(client, account)
    url = f"{api_url}/v1/Accounts/{other_account.sid}/Messages/{sid}"
    assert httpx.post(url, data={"Body": ""}, auth=other_account.auth).status_code == 404
    assert httpx.delete(url, auth=other_account.auth).status_code == 404
    assert rows_of(sid)["messages"] == 1


def test_sdk_deletes_an_attachment(client: Client, account: Account, api_url: str) -> None:
    # given
    sid = settled(client, account)
    [item] = client.messages(sid).media.list()
    raw = httpx.get(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages/{sid}/Media/{item.sid}.json",
        auth=account.auth,
    ).json()
    assert_matches(raw, MEDIA)
    # when
    deleted = client.messages(sid).media(item.sid).delete()
    # then
    assert deleted is True
    assert client.messages(sid).media.list() == []
    assert rows_of(sid)["messages"] == 1
    with pytest.raises(TwilioRestException) as missing:
        client.messages(sid).media(item.sid).delete()
    assert missing.value.status == 404
