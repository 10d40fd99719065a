"""The carrier hand-off stage: claim, throttle, submit every segment with its reference, record.

A batch goes through two short transactions, so no transaction waits on the carrier:

1. claim due rows of stage ``carrier`` into stage ``sending`` with a lease (``next_attempt_at``);
   settle what needs no carrier — expired (30036), throttle wait beyond validity (30001),
   throttled (back to ``carrier`` at their reserved slot) — mark the rest ``sending`` and read
   their segments. A crash before its commit leaves the rows as they were, due;
2. after ``submit``: carrier ids on the segments (with the connection each left by), then
   ``sent``, ``failed`` or a retry.

Every update of step 2 is fenced by the lease, so a worker that lost its lease (the sweeper
handed the row on) changes nothing. A row whose lease expired comes back with ``reconcile``
set: its segments are first looked up at the carrier by reference, never blindly resent.

Each message leaves by the connection its route picks (workers/carriers/routing.py); one no
route can carry fails at once with 21612. A reconciled row is looked up at the connection its
route picks now: after a failover that may not be the one that had it, which then answers
"unknown", and the segment is sent again (a possible duplicate).
"""

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, exists, select, update
from sqlmodel import Session

from schemas.db import any_bound, kept
from schemas.models import messages_table, phone_numbers_table, receipts_table, segments_table
from schemas.settings import get_settings
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.carriers import connectivity
from workers.carriers import health as carrier_health
from workers.carriers.base import (
    Accepted,
    CarrierDriver,
    CarrierError,
    CarrierUnreachable,
    CredentialsRefused,
    Deferred,
    PermanentCarrierError,
    Rejected,
    Result,
    Submission,
    TransientCarrierError,
    sids_of,
)
from workers.carriers.connections import Connections
from workers.carriers.routing import NO_ROUTE
from workers.metrics import CARRIER_RESULTS, STAGE_LATENCY, THROTTLE_WAIT, recorder
from workers.pipeline.claims import claim_due, m, matching
from workers.pipeline.throttle import TokenBucket
from workers.pipeline.transitions import move

log = logging.getLogger(__name__)

BATCH = 100  # messages per claim; the simulator takes them in one request
SHORT_WAIT_S = 10.0  # waits up to this get a countdown wake-up; longer ones wait for the sweeper
BACKOFF_BASE_S = 1.0  # first retry after a transient carrier error
BACKOFF_MAX_S = 300.0  # retries never wait longer than five minutes
EXPIRED = (30036, "The message's validity period expired before it could be sent")
OVERFLOW = (30001, "Queue overflow: the sender's throughput cannot send it within its validity")
REFUSED = 30008  # the carrier refused the whole request


@dataclass(frozen=True)
class Batch:
    """What one claim took: the rows, the lease that fences them, and the moment of the claim."""

    rows: list[Row[Any]]
    lease: datetime
    now: datetime

    def fence(self) -> dict[str, Any]:
        return {"stage": "sending", "next_attempt_at": self.lease}


def _fail(session: Session, sids: list[str], error: tuple[int, str], batch: Batch) -> None:
    move(session, sids, MessageStatus.FAILED, error_code=error[0], error_message=error[1],
         only_if=batch.fence(), stage="done", next_attempt_at=None)  # fmt: skip


def backoff_s(attempts: int, retry_after_s: float = 0.0) -> float:
    """Exponential backoff with jitter, never sooner than the carrier's Retry-After."""
    exponential = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempts) * random.uniform(0.5, 1.5)
    return min(BACKOFF_MAX_S, max(retry_after_s, exponential))


def _rates_statement() -> Any:
    numbers = phone_numbers_table.c
    return select(numbers.phone_number, numbers.segments_per_second).where(
        any_bound(numbers.phone_number, "w_senders")
    )


def _sender_rates(session: Session, senders: set[str]) -> dict[str, float]:
    default = get_settings().default_sender_sps
    rates = dict.fromkeys(senders, default)
    statement = kept("carrier.rates", _rates_statement)
    for number, sps in session.execute(statement, {"w_senders": list(senders)}):
        if sps:
            rates[number] = sps
    return rates


def _reserve(session: Session, bucket: TokenBucket, rows: list[Row[Any]]) -> dict[str, float]:
    """Seconds each message must wait for its sender's throughput (its slot is reserved)."""
    asking = [row for row in rows if not row.throttle_reserved]
    if not asking:
        return {}
    rates = _sender_rates(session, {row.from_number for row in asking})
    requests = [
        (row.from_number, rates[row.from_number], max(1.0, rates[row.from_number]),
         float(row.num_segments))
        for row in asking
    ]  # fmt: skip
    waits = bucket.wait_many(requests, allow_debt=True)
    if waits is None:  # Redis is down: send rather than stall the platform (logged by the bucket)
        return {}
    held = {row.sid: wait for row, wait in zip(asking, waits, strict=True) if wait > 0}
    for wait in held.values():
        recorder.observe(THROTTLE_WAIT, wait)
    return held


def _settle_without_carrier(
    session: Session, bucket: TokenBucket, batch: Batch
) -> tuple[list[Row[Any]], float | None]:
    """Expire, overflow or park throttled rows; returns the rows to submit now."""
    now, fence = batch.now, batch.fence()
    live = [row for row in batch.rows if row.expires_at > now]
    expired = [row.sid for row in batch.rows if row.expires_at <= now]
    waits = _reserve(session, bucket, live)
    overflow = [
        r.sid
        for r in live
        if r.sid in waits and now + timedelta(seconds=waits[r.sid]) > r.expires_at
    ]
    parked = {sid: wait for sid, wait in waits.items() if sid not in overflow}
    ready = [row for row in live if row.sid not in waits]
    _fail(session, expired, EXPIRED, batch)
    _fail(session, overflow, OVERFLOW, batch)
    if parked:
        session.execute(
            update(messages_table)
            .where(m.sid == bindparam("b_sid"), *matching(fence))
            .values(stage="carrier", next_attempt_at=bindparam("b_due"), throttle_reserved=True),
            [{"b_sid": sid, "b_due": now + timedelta(seconds=w)} for sid, w in parked.items()],
        )
    move(session, [row.sid for row in ready], MessageStatus.SENDING, now=now, only_if=fence)
    return ready, min(parked.values()) if parked else None


def _pending_statement() -> Any:
    s = segments_table.c
    return (
        select(s.message_sid, s.number, s.total, s.text, s.udh_ref)
        .where(any_bound(s.message_sid, "w_sids"), s.carrier_id.is_(None))
        .order_by(s.message_sid, s.number)
    )


def _pending_segments(session: Session, sids: list[str]) -> list[Row[Any]]:
    statement = kept("carrier.pending", _pending_statement)
    return list(session.execute(statement, {"w_sids": sids}).all())


def _submitted_statement() -> Any:
    s = segments_table.c
    return (
        update(segments_table)
        .where(s.message_sid == bindparam("b_sid"), s.number == bindparam("b_number"),
               s.carrier_id.is_(None))
        .values(carrier_id=bindparam("b_id"), status="submitted",
                date_submitted=bindparam("b_now"), date_updated=bindparam("b_now"),
                connection=bindparam("b_conn"))
    )  # fmt: skip


def _submit(
    carriers: Connections, rows: list[Row[Any]], segments: list[Row[Any]]
) -> tuple[dict[str, Result], dict[str, str]]:
    """Hand the segments over, each message's by the connection its route picks; reconciled
    rows are looked up by reference first. Returns the results by reference and the connection
    each message went to (by sid)."""
    by_sid = {row.sid: row for row in rows}
    choices = {row.sid: carriers.choose(row) for row in rows}
    results: dict[str, Result] = {}
    groups: dict[str, list[Submission]] = {}
    for seg in segments:
        row = by_sid[seg.message_sid]
        reference = f"{seg.message_sid}-{seg.number}"
        choice = choices[row.sid]
        if choice is None:
            kind = "MMS" if row.num_media else "SMS"
            results[reference] = Rejected(reference, NO_ROUTE,
                                          f"no route carries an {kind} to {row.to}")  # fmt: skip
            continue
        driver = carriers.drivers[choice.connection]
        if row.reconcile:
            try:
                known = driver.lookup(reference)
            except CarrierError as exc:  # unknown whether the carrier has it: ask again later
                results[reference] = Deferred(reference, 0.0, str(exc))
                continue
            if known is not None:
                log.info("reconciled %s: %s", reference, known, extra={"sid": row.sid})
                results[reference] = known
                continue
        groups.setdefault(choice.connection, []).append(
            Submission(reference=reference, to=row.to, from_=row.from_number, text=seg.text,
                       part=seg.number, total=seg.total, udh_ref=seg.udh_ref,
                       media=tuple(row.media_urls) if seg.number == 1 else (),
                       encoding=row.encoding, expires_at=row.expires_at)
        )  # fmt: skip
    for name, group in groups.items():
        answers = _hand_over(carriers.drivers[name], group, name, carriers.router.unreachable)
        results.update({answer.reference: answer for answer in answers})
    went = {sid: choice.connection for sid, choice in choices.items() if choice is not None}
    return results, went


def _hand_over(
    driver: CarrierDriver, submissions: list[Submission], name: str,
    down: Callable[[str], None] = lambda _: None,
) -> Sequence[Result]:  # fmt: skip
    """One connection's share: its answers, or what its failure means for each segment;
    ``down`` hears of a connection that cannot be reached or refuses our credentials."""
    # A driver with a connection of its own (SMPP) reports it; for the others, the hand-off
    # says whether the carrier could be reached.
    reports = not getattr(driver, "watches_itself", False)
    try:
        answers: Sequence[Result] = driver.submit(submissions)
        if reports:
            connectivity.reached(name, True)
    except CarrierUnreachable as exc:
        down(name)
        if reports:
            connectivity.reached(name, False, str(exc))
        log.warning("carrier unreachable for %d segments: %s", len(submissions), exc,
                    extra={"sids": sids_of(submissions)})  # fmt: skip
        answers = [Deferred(s.reference, 0.0, str(exc)) for s in submissions]
    except CredentialsRefused as exc:  # the platform's fault: wait, with backoff; logged there
        down(name)
        carrier_health.refused(exc.message)
        answers = [Deferred(s.reference, 0.0, f"carrier refused our credentials: {exc}")
                   for s in submissions]  # fmt: skip
    except TransientCarrierError as exc:
        log.warning("carrier unavailable for %d segments: %s", len(submissions), exc,
                    extra={"sids": sids_of(submissions)})  # fmt: skip
        hint = exc.retry_after_s or 0.0
        answers = [Deferred(s.reference, hint, str(exc)) for s in submissions]
    except PermanentCarrierError as exc:
        log.error("carrier refused %d segments: %s", len(submissions), exc,
                  extra={"sids": sids_of(submissions)})  # fmt: skip
        answers = [Rejected(s.reference, REFUSED, str(exc)) for s in submissions]
    if any(isinstance(answer, Accepted) for answer in answers):
        carrier_health.accepted()
    return answers


def _count_result(answer: Result, connection: str) -> None:
    """Counted by connection ("" for a message no route could carry)."""
    if isinstance(answer, Accepted):
        recorder.count(CARRIER_RESULTS, result="accepted", code="", connection=connection)
    elif isinstance(answer, Rejected):
        recorder.count(CARRIER_RESULTS, result="rejected", code=answer.error_code,
                       connection=connection)  # fmt: skip
    else:
        recorder.count(CARRIER_RESULTS, result="deferred", code="", connection=connection)


def _record(session: Session, batch: Batch, rows: list[Row[Any]], segments: list[Row[Any]],
            results: dict[str, Result],
            went: dict[str, str]) -> tuple[list[str], float | None]:  # fmt: skip
    """Step 2: carrier ids on segments, then each message sent, failed or retried."""
    now, fence = utcnow(), batch.fence()
    accepted = [
        {
            "b_sid": seg.message_sid,
            "b_number": seg.number,
            "b_id": result.carrier_id,
            "b_conn": went.get(seg.message_sid),
            "b_now": now,
        }
        for seg in segments
        if isinstance(result := results.get(f"{seg.message_sid}-{seg.number}"), Accepted)
    ]
    if accepted:
        session.execute(kept("carrier.submitted", _submitted_statement), accepted)
    outcome: dict[str, list[Result]] = {row.sid: [] for row in rows}
    for seg in segments:
        answer = results.get(f"{seg.message_sid}-{seg.number}")
        if answer is not None:
            outcome[seg.message_sid].append(answer)
            _count_result(answer, went.get(seg.message_sid, ""))
    sent, retry = [], {}
    for row in rows:
        answers = outcome[row.sid]
        rejected = [a for a in answers if isinstance(a, Rejected)]
        if rejected:
            _fail(session, [row.sid], (rejected[0].error_code, rejected[0].message), batch)
        elif all(isinstance(a, Accepted) for a in answers):
            sent.append(row.sid)
        else:
            hint = max((a.retry_after_s for a in answers if isinstance(a, Deferred)), default=0.0)
            retry[row.sid] = min(
                now + timedelta(seconds=backoff_s(row.attempts, hint)), row.expires_at
            )
    move(session, sent, MessageStatus.SENT, now=now, only_if=fence, stage="sent",
         next_attempt_at=None, date_sent=now)  # fmt: skip
    if retry:
        session.execute(
            update(messages_table)
            .where(m.sid == bindparam("b_sid"), *matching(fence))
            .values(stage="carrier", next_attempt_at=bindparam("b_due"), attempts=m.attempts + 1,
                    reconcile=False),
            [{"b_sid": sid, "b_due": due} for sid, due in retry.items()],
        )  # fmt: skip
    carrier_health.sync(session)
    connectivity.sync(session)
    session.commit()
    for row in rows:
        if row.sid not in retry:
            recorder.observe(STAGE_LATENCY, (now - row.due_at).total_seconds(), stage="carrier")
    soonest = min(retry.values(), default=None)
    return [a["b_id"] for a in accepted], (soonest - now).total_seconds() if soonest else None


def _early_statement() -> Any:
    r = receipts_table.c
    return select(exists().where(r.applied_at.is_(None), any_bound(r.carrier_id, "w_ids")))


def early_receipts_waiting(session: Session, carrier_ids: list[str]) -> bool:
    """Did receipts for these carrier ids land before the hand-off was committed?"""
    if not carrier_ids:
        return False
    statement = kept("carrier.early", _early_statement)
    return bool(session.execute(statement, {"w_ids": carrier_ids}).scalar())


@dataclass(frozen=True)
class HandOff:
    claimed: int  # rows taken by the claim; 0 means the stage is drained
    retry_in_s: float | None  # the soonest short wait (throttle or retry) a wake-up should cover
    carrier_ids: list[str]


def hand_off_batch(
    session: Session,
    carriers: Connections,
    bucket: TokenBucket,
    claimed: Callable[[Session], None] = lambda _: None,
) -> HandOff:
    """Claim a batch, hand it over and record what came of it; ``claimed`` runs once the
    claim (and the ``sending`` it wrote) is committed, before the carrier is waited on."""
    now = utcnow()
    lease = now + timedelta(seconds=get_settings().sending_lease_s)
    sets = {"stage": "sending", "next_attempt_at": lease, "date_updated": now}
    rows = claim_due(session, "carrier", now=now, limit=BATCH, sets=sets)
    if not rows:
        return HandOff(0, None, [])
    batch = Batch(rows, lease, now)
    ready, parked_wait = _settle_without_carrier(session, bucket, batch)
    segments = _pending_segments(session, [row.sid for row in ready])
    session.commit()
    claimed(session)
    results, went = _submit(carriers, ready, segments)
    carrier_ids, retry_wait = _record(session, batch, ready, segments, results, went)
    waits = [wait for wait in (parked_wait, retry_wait) if wait is not None]
    return HandOff(len(rows), min(waits, default=None), carrier_ids)
