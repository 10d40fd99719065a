"""Messages handsets send, against the real database: parts stored as they come, joined once,
opt-out keywords, the webhook owed; and the MO a deliver_sm carries, as SMSCs write it."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from schemas.db import get_engine, session_scope
from schemas.inbound import inbound_parts_table, opt_outs_table
from schemas.models import callbacks_table, messages_table, phone_numbers_table
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers.backlog import snapshot
from workers.carriers.smpp.mo import (
    SAR_MSG_REF_NUM,
    SAR_SEGMENT_SEQNUM,
    SAR_TOTAL_SEGMENTS,
    UnreadableMo,
    read_mo,
)
from workers.carriers.smpp.outcomes import is_mo
from workers.carriers.smpp.pdu import ESM_UDHI, ShortMessage, concatenation_udh
from workers.stages import inbound
from workers.stages.inbound import MoPart
from workers.twoway import optouts

m, c = messages_table.c, callbacks_table.c


def deliver_sm(text: bytes, *, coding: int = 0, udh: bytes = b"", **tlvs: bytes) -> ShortMessage:
    return ShortMessage(
        source_addr="4915112345678", destination_addr="15005550006", source_addr_ton=1,
        esm_class=ESM_UDHI if udh else 0, data_coding=coding, short_message=udh + text,
        tlvs={int(tag, 16): value for tag, value in tlvs.items()},
    )  # fmt: skip


def test_mo_text_in_each_alphabet_and_group() -> None:
    assert read_mo(deliver_sm(b"Hello \x00 \x1b\x65")) == MoPart(
        "+4915112345678", "+15005550006", "Hello @ €"
    )  # GSM 03.38, one septet per octet, with an escape
    assert read_mo(deliver_sm("Grüße".encode("latin-1"), coding=3)).text == "Grüße"
    assert read_mo(deliver_sm("Привет 👋".encode("utf-16-be"), coding=8)).text == "Привет 👋"
    part = read_mo(deliver_sm(b"second", udh=concatenation_udh(201, 3, 2)))
    assert (part.reference, part.total, part.number, part.text) == (201, 3, 2, "second")
    sixteen = bytes([0x06, 0x08, 0x04, 0x12, 0x34, 2, 1])
    assert read_mo(deliver_sm(b"x", udh=sixteen)).reference == 0x1234
    sar = read_mo(deliver_sm(b"y", **{hex(SAR_MSG_REF_NUM): b"\x00\x07",
                                      hex(SAR_TOTAL_SEGMENTS): b"\x02",
                                      hex(SAR_SEGMENT_SEQNUM): b"\x02"}))  # fmt: skip
    assert (sar.reference, sar.total, sar.number) == (7, 2, 2)
    with pytest.raises(UnreadableMo):
        read_mo(deliver_sm(b"\x00", coding=4))  # 8-bit binary: not text
    # an emoji split between two UCS-2 parts costs that character, not the message
    halves = "a👋".encode("utf-16-be")
    assert (
        read_mo(deliver_sm(halves[:4], coding=8, udh=concatenation_udh(3, 2, 1))).text == "a\ufffd"
    )
    assert (
        read_mo(deliver_sm(halves[4:], coding=8, udh=concatenation_udh(3, 2, 2))).text == "\ufffd"
    )
    # only message type 0 is a handset's: an SME acknowledgement (0x08) is not, nor a receipt
    assert is_mo(deliver_sm(b"x"))
    acknowledgement = deliver_sm(b"x")
    assert not is_mo(ShortMessage(**{**acknowledgement.__dict__, "esm_class": 0x08}))
    assert not is_mo(ShortMessage(**{**acknowledgement.__dict__, "esm_class": 0x04}))


def store(*parts: MoPart, carrier: str = "smpp") -> None:
    with session_scope() as session:
        inbound.store(session, [part.row(carrier) for part in parts])


def join() -> int:
    with session_scope() as session:
        return inbound.join_batch(session)


def inbound_from(handset: str) -> list[dict[str, object]]:
    with session_scope() as session:
        rows = session.execute(
            select(m.sid, m.body, m.status, m.direction, m.error_code, m.num_segments, m.to)
            .where(m.from_number == handset, m.direction == "inbound")
            .order_by(m.date_created)
        ).all()  # fmt: skip
    return [dict(row._mapping) for row in rows]


def with_webhook(account: Account, url: str) -> None:
    with session_scope() as session:
        session.execute(
            update(phone_numbers_table)
            .where(phone_numbers_table.c.phone_number == account.number).values(sms_url=url)
        )  # fmt: skip
        session.commit()


def test_a_single_mo_becomes_an_inbound_message_with_its_webhook(account: Account) -> None:
    # given: the number posts what it receives to a webhook
    with_webhook(account, "http://127.0.0.1:9/sms")
    handset = random_number()
    # when: a handset texts it
    store(MoPart(handset, account.number, "hello there"))
    assert join() >= 1
    # then: one inbound message of the number's account, received
    [message] = inbound_from(handset)
    assert message["body"] == "hello there"
    assert message["status"] == "received"
    assert message["to"] == account.number
    with session_scope() as session:
        [hook] = session.execute(
            select(c.url, c.params, c.state, c.webhook_id).where(c.message_sid == message["sid"])
        ).all()
    assert (hook.url, hook.state, hook.webhook_id) == (
        "http://127.0.0.1:9/sms", "pending", f"{message['sid']}.received"
    )  # fmt: skip
    assert hook.params | {"MessageSid": "-"} == {
        "MessageSid": "-", "SmsSid": message["sid"], "SmsMessageSid": message["sid"],
        "AccountSid": account.sid, "From": handset, "To": account.number, "Body": "hello there",
        "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    # and two messages of one part from one handset are two messages
    store(MoPart(handset, account.number, "again"), MoPart(handset, account.number, "again"))
    join()
    assert [m["body"] for m in inbound_from(handset)] == ["hello there", "again", "again"]


def test_parts_out_of_order_with_a_repeat_make_one_message(account: Account) -> None:
    handset = random_number()
    parts = [MoPart(handset, account.number, text, 77, 3, n)
             for n, text in ((3, "three"), (1, "one "), (1, "one "), (2, "two "))]  # fmt: skip
    # when: the last part comes first and the first comes twice
    store(*parts[:2])
    join()
    assert inbound_from(handset) == []  # not complete yet
    with session_scope() as session:  # and waiting, as /metrics and mycpaas queues show
        [waiting] = [stage for stage in snapshot(session) if stage.stage == "inbound"]
    assert (waiting.queue, waiting.depth >= 2) == ("carrier", True)
    store(*parts[2:])
    join()
    # then
    [message] = inbound_from(handset)
    assert (message["body"], message["num_segments"], message["error_code"]) == (
        "one two three", 3, None
    )  # fmt: skip
    # and a part the carrier sends again once its message is made (its deliver_sm_resp was
    # lost) is dropped: it never becomes a second, incomplete message
    store(parts[0])
    age(handset)
    join()
    assert len(inbound_from(handset)) == 1


def age(handset: str) -> None:
    """The handset's waiting parts, past the reassembly window."""
    with session_scope() as session:
        session.execute(
            update(inbound_parts_table)
            .where(inbound_parts_table.c.from_number == handset,
                   inbound_parts_table.c.message_sid.is_(None))
            .values(date_received=utcnow() - timedelta(seconds=301))
        )  # fmt: skip
        session.commit()


def test_a_message_missing_a_part_is_stored_with_30009_once_too_old(account: Account) -> None:
    handset = random_number()
    store(MoPart(handset, account.number, "first ", 9, 2, 1))
    join()
    assert inbound_from(handset) == []
    # when: its part is older than the reassembly window
    age(handset)
    join()
    # then
    [message] = inbound_from(handset)
    assert (message["body"], message["error_code"]) == ("first ", 30009)


def test_stop_opts_the_sender_out_and_start_back_in(account: Account) -> None:
    handset = random_number()

    def opted_out() -> bool:
        o = opt_outs_table.c
        with session_scope() as session:
            found = session.execute(
                select(o.scope).where(o.phone_number == handset, o.scope == account.number)
            ).first()
        return found is not None

    store(MoPart(handset, account.number, "  stop "))
    join()
    assert opted_out()
    store(MoPart(handset, account.number, "Start"))
    join()
    assert not opted_out()
    assert optouts.keyword("Unsubscribe") == "STOP"
    assert optouts.keyword("info") == "HELP"
    assert optouts.keyword("stop please") is None


def test_a_message_to_no_number_of_ours_is_dropped() -> None:
    handset = random_number()
    store(MoPart(handset, "+15005550999", "anyone?"))
    join()
    assert inbound_from(handset) == []
    with session_scope() as session:
        waiting = session.execute(
            select(inbound_parts_table.c.id).where(
                inbound_parts_table.c.from_number == handset,
                inbound_parts_table.c.message_sid.is_(None),
            )
        ).all()
    assert waiting == []


def test_two_joins_at_once_make_one_message_of_a_group(account: Account) -> None:
    # given: a complete group, and a transaction holding its parts' locks
    handset = random_number()
    store(
        MoPart(handset, account.number, "a", 5, 2, 1), MoPart(handset, account.number, "b", 5, 2, 2)
    )
    first = get_engine().connect()
    trans = first.begin()
    first.execute(
        select(inbound_parts_table.c.id)
        .where(inbound_parts_table.c.from_number == handset)
        .with_for_update()
    )  # fmt: skip
    # when: a join runs meanwhile, then the holder lets go and a second join runs
    runner = threading.Thread(target=join)
    runner.start()
    runner.join(10)
    assert not runner.is_alive()  # it did not wait for the locks: it skipped the group
    assert inbound_from(handset) == []
    trans.rollback()
    first.close()
    join()
    join()
    # then: one message
    assert [msg["body"] for msg in inbound_from(handset)] == ["ab"]


def test_a_join_that_lost_the_race_for_its_parts_makes_no_message(account: Account) -> None:
    # given: a join that read a part as open, and another join that took it first (SQLite has
    # no row locks: two joins can read the same open part); the part is a STOP
    handset = random_number()
    store(MoPart(handset, account.number, "stop"))
    with session_scope() as session:
        rows = session.execute(
            select(inbound_parts_table).where(inbound_parts_table.c.from_number == handset)
        ).all()
        owners = inbound._owners(session, {account.number})
    join()
    # when: the late join writes what it made of the part
    with session_scope() as session:
        made = inbound._Made()
        inbound._join(made, rows, True, owners[account.number], utcnow())
        made.write(session)
        session.commit()
    # then: still one message, the first join's, and one automatic reply to its STOP
    assert [message["body"] for message in inbound_from(handset)] == ["stop"]
    with session_scope() as session:
        answered = session.execute(
            select(m.sid).where(m.to == handset, m.direction == "outbound-reply")
        ).all()
    assert len(answered) == 1
