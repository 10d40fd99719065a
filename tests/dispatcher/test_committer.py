"""Group commit of creates against the real database: the messages of concurrent requests share
one transaction, each request returns only once its message is committed, and a collision on
an Idempotency-Key fails only the request that collided."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from dispatcher.errors import ApiError
from dispatcher.intake.committer import Committer, stored
from dispatcher.intake.create import parse_new_message, prepare
from dispatcher.intake.services import add_to_pool, create_service
from schemas.db import get_engine, session_scope
from schemas.models import Message, PhoneNumber, messages_table, segments_table
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers.twoway.optouts import opt_out


def new_message(account: Account, key: str | None = None, to: str | None = None) -> Message:
    now = utcnow()
    params = {"To": [to or random_number()], "From": [account.number], "Body": ["grouped"]}
    with session_scope() as session:
        return prepare(session, account.sid, parse_new_message(params, now), now, key)


def committed(sids: list[str]) -> set[str]:
    with session_scope() as session:
        found = session.execute(select(messages_table.c.sid).where(messages_table.c.sid.in_(sids)))
        return set(found.scalars())


def test_a_collision_fails_only_its_request_and_the_rest_of_its_batch_commits(
    account: Account,
) -> None:
    committer = Committer()
    first_key, second_key = f"raced-{random_number()}", f"raced-{random_number()}"
    # given: another transaction has inserted messages with two keys and not committed yet
    rows = []
    for key in (first_key, second_key):
        row = new_message(account, key).model_dump()
        row["from_number"] = row.pop("from_")
        rows.append(row)
    with get_engine().connect() as other:
        other.execute(insert(messages_table), rows)
        # when: a request with the first key is handed over (its batch waits on the unique
        # index), then one with the second key and nine others, which queue as one batch
        blocked = new_message(account, first_key)
        colliding = new_message(account, second_key)
        others = [new_message(account) for _ in range(9)]
        returned_at: dict[str, float] = {}
        errors: dict[str, Exception] = {}

        def commit(message: Message) -> None:
            try:
                committer.commit(message)
            except Exception as exc:
                errors[message.sid] = exc
            returned_at[message.sid] = time.monotonic()

        with ThreadPoolExecutor(11) as pool:
            pool.submit(commit, blocked)
            time.sleep(0.2)  # the first batch is now waiting for the other transaction
            for message in [colliding, *others]:
                pool.submit(commit, message)
            time.sleep(0.3)
            # then: nothing has returned while the other transaction is open
            assert returned_at == {}
            assert committed([m.sid for m in others]) == set()
            other.commit()
            released_at = time.monotonic()
    # then: only the two requests with taken keys failed; the rest of the batch is stored
    assert set(errors) == {blocked.sid, colliding.sid}
    assert all(isinstance(error, IntegrityError) for error in errors.values())
    assert committed([m.sid for m in others]) == {m.sid for m in others}
    assert committed([blocked.sid, colliding.sid]) == set()
    assert all(at >= released_at for at in returned_at.values())


def test_each_commit_returns_once_its_message_is_visible_to_others(account: Account) -> None:
    committer = Committer()
    messages = [new_message(account) for _ in range(40)]
    seen_on_return: list[bool] = []
    lock = threading.Lock()

    def commit(message: Message) -> None:
        committer.commit(message)
        visible = committed([message.sid]) == {message.sid}  # from another connection
        with lock:
            seen_on_return.append(visible)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(commit, messages))
    assert seen_on_return == [True] * 40


def test_a_refused_message_fails_its_request_and_the_committer_carries_on(account: Account) -> None:
    committer = Committer()
    # given: a message of no account: the foreign key refuses it
    fields = new_message(account).model_dump() | {"account_sid": "AC" + "0" * 32}
    broken = Message.model_construct(**fields)
    with pytest.raises(IntegrityError):
        committer.commit(broken)
    fine = new_message(account)
    committer.commit(fine)  # the committer carries on
    assert committed([fine.sid]) == {fine.sid}


def test_what_copy_stores_reads_back_the_same(account: Account) -> None:
    # given: a body and media URLs with what COPY's text format escapes, and what JSON does
    tricky = 'tab\there\nline\r\\N \\ back\\slash "quoted" \u2603 \U0001f600 ,;|'
    urls = ['https://127.0.0.1:9/a\tb.png?x=\\N&y="1"', "https://127.0.0.1:9/ü"]
    message = new_message(account).model_copy(
        update={"body": tricky, "media_urls": urls,
                "status_callback": "https://127.0.0.1:9/status?a=1&b=\\t"}
    )  # fmt: skip
    # when
    stored([message])
    # then
    with session_scope() as session:
        row = session.execute(
            select(messages_table).where(messages_table.c.sid == message.sid)
        ).one()
    assert (row.body, row.media_urls, row.status_callback, row.date_created) == (
        message.body, message.media_urls, message.status_callback, message.date_created,
    )  # fmt: skip
    assert row.idempotency_key is None
    assert row.send_at is None


def test_an_sms_sent_now_is_stored_with_its_segments_and_goes_straight_to_the_carrier(
    account: Account,
) -> None:
    # given: a two-part SMS, an MMS and a scheduled SMS, checked as a create checks them
    now = utcnow()
    base = {"To": [random_number()], "From": [account.number]}
    kinds = {
        "sms": {**base, "Body": ["x" * 200]},
        "mms": {**base, "Body": ["x" * 200], "MediaUrl": ["https://example.com/a.png"]},
        "later": {**base, "Body": ["x" * 200], "ScheduleType": ["fixed"],
                  "SendAt": [(now + timedelta(hours=1)).isoformat()]},
    }  # fmt: skip
    with session_scope() as session:
        made = {kind: prepare(session, account.sid, parse_new_message(params, now), now)
                for kind, params in kinds.items()}  # fmt: skip
    # when: they are stored in one transaction
    stored(list(made.values()))
    # then: the SMS has its two parts, sharing one reference, and waits for the carrier stage
    s = segments_table.c
    with session_scope() as session:
        parts = session.execute(
            select(s.message_sid, s.number, s.total, s.udh_ref, s.status)
            .where(s.message_sid.in_([m.sid for m in made.values()]))
            .order_by(s.message_sid, s.number)
        ).all()  # fmt: skip
        stages = dict(session.execute(select(messages_table.c.sid, messages_table.c.stage).where(
            messages_table.c.sid.in_([m.sid for m in made.values()]))).all())  # fmt: skip
    sms = made["sms"].sid
    assert [(p.message_sid, p.number, p.total, p.status) for p in parts] == [
        (sms, 1, 2, "pending"), (sms, 2, 2, "pending")
    ]  # fmt: skip
    assert parts[0].udh_ref == parts[1].udh_ref
    # the MMS waits for its media and the scheduled one for its time: both are split later
    assert stages == {sms: "carrier", made["mms"].sid: "media", made["later"].sid: "scheduled"}


def test_a_create_to_an_opted_out_recipient_fails_alone_in_its_batch(account: Account) -> None:
    # given: the account's number is in a Messaging Service, and a recipient opted out of it
    gone = random_number()
    with session_scope() as session:
        service = create_service(session, account.sid, {"FriendlyName": ["pool"]})
        number = session.get(PhoneNumber, account.number)
        assert number is not None
        add_to_pool(session, service, number)
        opt_out(session, account.sid, service.sid, gone, "keyword", utcnow())
        session.commit()
    committer = Committer()
    to_gone, others = new_message(account, to=gone), [new_message(account) for _ in range(5)]
    errors: dict[str, Exception] = {}

    def commit(message: Message) -> None:
        try:
            committer.commit(message)
        except Exception as exc:
            errors[message.sid] = exc

    # when: they are handed over at once (one batch, or a few)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(commit, [to_gone, *others]))
    # then: the one sent From the number to the service's opted-out recipient fails with 21610
    assert list(errors) == [to_gone.sid]
    assert isinstance(errors[to_gone.sid], ApiError)
    assert errors[to_gone.sid].code == 21610
    assert committed([m.sid for m in [to_gone, *others]]) == {m.sid for m in others}
