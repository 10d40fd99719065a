"""Delivery receipts: stored as they arrive, applied to their segments whenever both are known.

The carrier may report on a segment before the hand-off that gave it its carrier id is
committed. So a receipt is first stored (the inbox); applying joins the inbox with segments by
carrier id, and whatever does not match yet waits for the hand-off, which wakes this stage
again once its ids are committed.

A message is decided from its segments, and two batches may hold receipts for segments of the
same message. Counting under READ COMMITTED while the other batch is uncommitted lets each miss
the other's segment (write skew: every segment delivered, the message left ``sent``). So the
messages are locked, in sid order, after their segments are written and before they are
counted: the second batch waits for the first to commit and then counts what it wrote. Every
writer takes segment rows before message rows (the hand-off does too), so the locks cannot
cycle. :func:`settle_stranded` is the sweeper's safety net for whatever still slips through;
each message it settles is counted in ``mycpaas_settle_rescues_total``, which should stay 0.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, exists, func, or_, select, update
from sqlmodel import Session

from schemas.copying import insert_rows
from schemas.db import any_bound, constant, kept
from schemas.models import messages_table, receipts_table, segments_table
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.metrics import SETTLE_RESCUES, recorder
from workers.pipeline.transitions import move

log = logging.getLogger(__name__)

BATCH = 1000  # receipts applied per transaction
ORPHAN_AFTER = timedelta(days=1)  # a receipt no segment claims by then is dropped (and logged)
STRANDED_AFTER = timedelta(seconds=10)  # a settled-looking 'sent' message younger than this ...
STRANDED_WITHIN = timedelta(days=2)  # ... or older than this is not the safety net's to check
STRANDED_BATCH = 500  # messages the safety net settles per sweep
DELIVERED, UNDELIVERED, FAILED = "delivered", "undelivered", "failed"
RECEIPT_STATUSES = frozenset({DELIVERED, UNDELIVERED, FAILED})
ERROR_MESSAGES = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered by the carrier",
    30008: "Unknown error",
}
UNKNOWN_ERROR = 30008

r = receipts_table.c
s = segments_table.c
m = messages_table.c
FINAL_SEGMENT = ("delivered", "failed")
RECEIPT_FIELDS = ("carrier_id", "status", "error_code", "reference", "done_date")


def store(session: Session, receipts: list[dict[str, Any]], now: datetime | None = None) -> None:
    """Keep receipts as received (``carrier_id``, ``status``, ``error_code``, ``reference``…)."""
    now = now or utcnow()
    insert_rows(session, receipts_table, [
        {**{name: item.get(name) for name in RECEIPT_FIELDS}, "date_received": now}
        for item in receipts
    ])  # fmt: skip
    session.commit()


def _matched_statement() -> Any:
    return (
        select(r.id, r.status, r.error_code, s.message_sid, s.number)
        .join(segments_table, s.carrier_id == r.carrier_id)
        .join(messages_table, m.sid == s.message_sid)
        # a part recorded early (workers/carriers/smpp/answers.py) waits for its batch
        .where(r.applied_at.is_(None), m.status != MessageStatus.SENDING)
        .order_by(r.id)
        .limit(BATCH)
        .with_for_update(of=receipts_table, skip_locked=True)
    )


def _segments_statement() -> Any:
    return (
        update(segments_table)
        .where(s.message_sid == bindparam("b_sid"), s.number == bindparam("b_number"),
               or_(s.status == "pending", s.status == "submitted"))
        .values(status=bindparam("b_status"), error_code=bindparam("b_code"),
                date_updated=bindparam("b_now"))
    )  # fmt: skip


def _applied_statement() -> Any:
    return (
        update(receipts_table).where(any_bound(r.id, "w_ids")).values(applied_at=bindparam("v_now"))
    )


def apply_batch(session: Session) -> int:
    """Apply receipts whose segment is known; returns how many were applied."""
    now = utcnow()
    matched = session.execute(kept("receipts.matched", _matched_statement)).all()
    if not matched:
        session.commit()
        return 0
    # In key order, so two batches that share segments (a repeated receipt) cannot deadlock.
    ordered = sorted(matched, key=lambda row: (row.message_sid, row.number))
    session.execute(
        kept("receipts.segments", _segments_statement),
        [
            {"b_sid": row.message_sid, "b_number": row.number, "b_now": now,
             "b_status": "delivered" if row.status == DELIVERED else "failed",
             "b_code": None if row.status == DELIVERED else (row.error_code or UNKNOWN_ERROR)}
            for row in ordered
        ],
    )  # fmt: skip
    session.execute(
        kept("receipts.applied", _applied_statement),
        {"w_ids": [row.id for row in matched], "v_now": now},
    )
    _settle_messages(session, {row.message_sid for row in matched}, now)
    session.commit()
    return len(matched)


def _lock_statement() -> Any:
    return select(m.sid).where(any_bound(m.sid, "w_sids")).order_by(m.sid).with_for_update()


def _totals_statement() -> Any:
    return (
        select(
            s.message_sid,
            func.count(),
            func.sum(case((s.status == "delivered", 1), else_=0)),
            func.min(s.error_code),
        )
        .where(any_bound(s.message_sid, "w_sids"))
        .group_by(s.message_sid)
    )


def _settle_messages(session: Session, sids: set[str], now: datetime) -> list[str]:
    """A message is delivered when every segment is; failed as soon as one segment failed.

    Locks the messages first (see the module's docstring); returns the sids it moved."""
    ordered = sorted(sids)
    session.execute(kept("receipts.lock", _lock_statement), {"w_sids": ordered}).all()
    totals = session.execute(kept("receipts.totals", _totals_statement), {"w_sids": ordered}).all()
    delivered = [sid for sid, count, done, code in totals if code is None and done == count]
    failed: dict[int, list[str]] = defaultdict(list)
    for sid, _count, _done, code in totals:
        if code is not None:
            failed[code].append(sid)
    moved = move(session, delivered, MessageStatus.DELIVERED, now=now, stage="done",
                 next_attempt_at=None)  # fmt: skip
    for code, failed_sids in failed.items():
        message = ERROR_MESSAGES.get(code, ERROR_MESSAGES[UNKNOWN_ERROR])
        moved += move(session, failed_sids, MessageStatus.FAILED, error_code=code,
                      error_message=message, now=now, stage="done",
                      next_attempt_at=None)  # fmt: skip
    return moved


def settle_stranded(session: Session) -> list[str]:
    """The sweeper's safety net: settle ``sent`` messages whose segments are all final.

    Only messages that have waited a little (a batch settling them may be about to commit) and
    entered ``sent`` recently (one that never gets a receipt stays ``sent``; it is not rescanned
    forever). Each message settled here is a settlement the receipts stage missed: counted and
    logged."""
    now = utcnow()
    unsettled = exists().where(s.message_sid == m.sid, s.status.not_in(FINAL_SEGMENT))
    stranded = set(
        session.execute(
            select(m.sid)
            .where(m.status == constant(MessageStatus.SENT.value),
                   m.date_updated.between(now - STRANDED_WITHIN, now - STRANDED_AFTER),
                   ~unsettled)
            .limit(STRANDED_BATCH)
        ).scalars()
    )  # fmt: skip
    if not stranded:
        return []
    rescued = _settle_messages(session, stranded, now)
    session.commit()
    for sid in rescued:
        recorder.count(SETTLE_RESCUES)
        log.error("%s had every segment final but was still sent; settled by the sweeper", sid,
                  extra={"sid": sid})  # fmt: skip
    return rescued


def drop_orphans(session: Session) -> int:
    """Give up on receipts that no segment claimed for a day (a carrier's mistake, or replay)."""
    now = utcnow()
    dropped = (
        session.execute(
            update(receipts_table)
            .where(r.applied_at.is_(None), r.date_received < now - ORPHAN_AFTER)
            .values(applied_at=now)
            .returning(r.carrier_id)
        )
        .scalars()
        .all()
    )
    session.commit()
    for carrier_id in dropped:
        log.warning("dropped receipt for unknown carrier id %s after %s", carrier_id, ORPHAN_AFTER)
    return len(dropped)


def waiting(session: Session) -> bool:
    """Are there receipts not applied yet (matched or not)?"""
    return session.execute(select(r.id).where(r.applied_at.is_(None)).limit(1)).first() is not None
