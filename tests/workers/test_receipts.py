"""Deciding a message from its segments: two receipt batches at once never strand it in 'sent'."""

import threading
import time
from datetime import timedelta

from sqlalchemy import event, insert, select, text, update
from sqlmodel import Session

from schemas.db import get_engine, session_scope
from schemas.models import messages_table, receipts_table, segments_table
from schemas.types import utcnow
from tests.processes import Account
from tests.workers.test_claims import make_due
from workers.pipeline.accepted import EarlyRecorder
from workers.stages import receipts
from workers.stages.carrier import early_receipts_waiting

m = messages_table.c
LOCK_WAIT_S = 10.0  # far more than the second batch needs to reach the message's lock


def make_sent(session: Session, account: Account, parts: int, *, entered: timedelta) -> str:
    """A multipart message in 'sent' (``entered`` ago) whose parts the carrier took."""
    sid = make_due(account, 1, "sent")[0]
    session.execute(
        update(messages_table).where(m.sid == sid)
        .values(status="sent", num_segments=parts, next_attempt_at=None,
                date_updated=utcnow() - entered)
    )  # fmt: skip
    session.execute(
        insert(segments_table),
        [{"message_sid": sid, "number": n, "total": parts, "text": "x", "udh_ref": 7,
          "carrier_id": carrier_id(sid, n), "status": "submitted", "date_updated": utcnow()}
         for n in range(1, parts + 1)],
    )  # fmt: skip
    return sid


def carrier_id(sid: str, number: int) -> str:
    return f"{sid[-12:]}-{number}"


def receipt(sid: str, number: int) -> dict[str, object]:
    return {"carrier_id": carrier_id(sid, number), "status": "delivered", "error_code": None,
            "reference": f"{sid}-{number}", "date_received": utcnow()}  # fmt: skip


def waiting_on_a_lock(pid: int) -> bool:
    with session_scope() as session:
        wait = session.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar()
    return wait == "Lock"


def test_two_batches_settling_one_message_at_once_deliver_it(account: Account) -> None:
    # given: a 3-part message in 'sent'
    with session_scope() as session:
        sid = make_sent(session, account, 3, entered=timedelta(0))
        session.commit()
    # and a first batch that applied parts 1-2 and holds its commit until told
    release = threading.Event()
    first_done = threading.Event()
    first = Session(get_engine(), expire_on_commit=False)
    event.listen(first, "before_commit", lambda _session: release.wait(LOCK_WAIT_S))
    errors: list[BaseException] = []

    def apply(session: Session, parts: list[int], done: threading.Event) -> None:
        try:
            session.execute(insert(receipts_table), [receipt(sid, n) for n in parts])
            receipts.apply_batch(session)
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)
        finally:
            session.close()
            done.set()

    threading.Thread(target=apply, args=(first, [1, 2], first_done), daemon=True).start()
    # when: a second batch applies part 3 while the first has not committed
    second = Session(get_engine(), expire_on_commit=False)
    second_pid = second.execute(text("SELECT pg_backend_pid()")).scalar_one()
    second_done = threading.Event()
    threading.Thread(target=apply, args=(second, [3], second_done), daemon=True).start()
    deadline = time.monotonic() + LOCK_WAIT_S
    while not second_done.is_set() and not waiting_on_a_lock(second_pid):
        assert time.monotonic() < deadline, "the second batch neither finished nor waited"
        time.sleep(0.02)
    release.set()  # the first batch commits
    assert first_done.wait(LOCK_WAIT_S)
    assert second_done.wait(LOCK_WAIT_S)
    assert errors == []
    # then: whichever counted last saw every part delivered
    with session_scope() as session:
        status = session.execute(select(m.status).where(m.sid == sid)).scalar_one()
    assert status == "delivered"


def test_the_sweeper_settles_a_sent_message_whose_parts_are_all_final(account: Account) -> None:
    # given: a message stranded in 'sent' a minute ago with both parts delivered (not committed:
    # the session platform's own sweeper must not settle it first)
    with session_scope() as session:
        sid = make_sent(session, account, 2, entered=timedelta(minutes=1))
        session.execute(
            update(segments_table).where(segments_table.c.message_sid == sid)
            .values(status="delivered")
        )  # fmt: skip
        # and one whose parts are still out, which it leaves alone
        waiting = make_sent(session, account, 2, entered=timedelta(minutes=1))
        # when
        rescued = receipts.settle_stranded(session)
        statuses = dict(
            session.execute(select(m.sid, m.status).where(m.sid.in_([sid, waiting]))).all()
        )
    # then
    assert sid in rescued
    assert waiting not in rescued
    assert statuses == {sid: "delivered", waiting: "sent"}


def test_a_message_that_just_entered_sent_is_left_to_its_receipts(account: Account) -> None:
    with session_scope() as session:
        sid = make_sent(session, account, 1, entered=timedelta(0))
        session.execute(
            update(segments_table).where(segments_table.c.message_sid == sid)
            .values(status="delivered")
        )  # fmt: skip
        rescued = receipts.settle_stranded(session)
        session.rollback()
    assert sid not in rescued


def test_a_receipt_for_a_part_recorded_early_waits_for_its_message_to_be_sent(
    account: Account,
) -> None:
    # given a message still being handed over whose part's carrier id the SMPP driver recorded
    # as its answer came (workers/carriers/smpp/answers.py), and that part's receipt
    with session_scope() as session:
        sid = make_sent(session, account, 1, entered=timedelta(0))
        session.execute(update(segments_table).where(segments_table.c.message_sid == sid)
                        .values(carrier_id=None, status="pending"))  # fmt: skip
        session.execute(update(messages_table).where(m.sid == sid).values(status="sending"))
        session.commit()
    EarlyRecorder()([(f"{sid}-1", carrier_id(sid, 1))])
    with session_scope() as session:
        receipts.store(session, [{"carrier_id": carrier_id(sid, 1), "status": "delivered",
                                  "error_code": None, "reference": None}])  # fmt: skip
        # when the receipts stage runs before the hand-off has moved the message
        applied = receipts.apply_batch(session)
        # then it waits: the message cannot skip 'sent'
        assert applied == 0
        # when the hand-off commits 'sent', it finds the receipt waiting and the stage applies it
        session.execute(update(messages_table).where(m.sid == sid).values(status="sent"))
        session.commit()
        assert early_receipts_waiting(session, [carrier_id(sid, 1)])
        assert receipts.apply_batch(session) == 1
        status = session.execute(select(m.status).where(m.sid == sid)).scalar()
    assert status == "delivered"
