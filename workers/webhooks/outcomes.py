"""What a callback's delivery came to, and recording it: the attempt in the ledger, the
callback's new state under the claim's lease, and what follows from it.

Outcomes: 2xx delivered; 410 gone (no more callbacks to that URL for the message); other 3xx
and 4xx failed for good; 429, 5xx, connect errors and timeouts retried with exponential
backoff and jitter (``Retry-After`` honoured within bounds) for about a day, then dead. An
inbound message's webhook differs: its 2xx answer may ask for replies (TwiML,
workers/twoway/replies.py); when it fails it goes to its fallback URL once, with Twilio's
ErrorCode and ErrorUrl, and without one it is retried for ``inbound_webhook_ttl_s``. Each
result is recorded only under the claim's lease (``next_attempt_at`` while ``delivering``): a
delivery that outlived its lease changes nothing, and makes no reply and no fallback.
"""

import logging
import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, insert, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from schemas.copying import insert_rows
from schemas.db import kept
from schemas.models import callback_attempts_table, callbacks_table
from schemas.settings import get_settings
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.metrics import CALLBACK_ATTEMPTS, STAGE_LATENCY, recorder
from workers.stages.callbacks import DELIVERING, PENDING, endpoint_of, promote_claiming
from workers.twoway import replies

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 3600.0  # retries are at least hourly
RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S = 1.0, 3600.0  # bounds on a receiver's Retry-After
c = callbacks_table.c


@dataclass(frozen=True)
class Outcome:
    callback_id: int
    message_sid: str
    url: str
    attempted_at: datetime
    latency_ms: float
    status_code: int | None
    error: str | None
    excerpt: str | None
    state: str  # delivered | failed | gone | pending (retry) | dead
    next_attempt_at: datetime | None
    counted: bool  # False when the callback was postponed without calling the endpoint
    created_at: datetime  # when the status change that owes this callback happened
    lease: datetime  # the claim's lease: a result recorded after it expired changes nothing
    # An inbound message's webhook answered 2xx: its content type and body, read for replies.
    answer: tuple[str | None, str] | None = None
    # An inbound message's webhook failed and has a fallback URL: the fallback is owed instead.
    fallback: dict[str, Any] | None = None


def backoff_s(attempts: int, retry_after_s: float | None) -> float:
    base = get_settings().callback_backoff_base_s
    exponential = min(BACKOFF_MAX_S, base * 2 ** max(0, attempts - 1))
    jittered = exponential * random.uniform(0.5, 1.0) + random.uniform(0, 1)
    if retry_after_s is not None:
        return min(RETRY_AFTER_MAX_S, max(RETRY_AFTER_MIN_S, retry_after_s, jittered / 2))
    return jittered


def attempted(
    row: Row[Any], lease: datetime, code: int | None, latency_ms: float,
    retry_after_s: float | None, error: str | None, state: str | None,
    excerpt: str | None = None, answer: tuple[str | None, str] | None = None,
) -> Outcome:  # fmt: skip
    """The outcome of a real attempt; ``state`` None means retry (or dead, once out of tries).
    An inbound message's webhook that failed goes to its fallback URL, once, instead; without
    one it is retried for ``inbound_webhook_ttl_s``."""
    now = utcnow()
    attempts = row.attempts + 1
    due = None
    fallback = None
    if row.status == MessageStatus.RECEIVED.value and state in (None, "failed"):
        if row.fallback_url:
            state, fallback = "failed", _fallback(row, code, now)
        elif state is None:
            ttl = timedelta(seconds=get_settings().inbound_webhook_ttl_s)
            due = now + timedelta(seconds=backoff_s(attempts, retry_after_s))
            state = "dead" if due > row.date_created + ttl else None
    if state is None:
        if attempts >= get_settings().callback_max_attempts:
            state, due = "dead", None
        else:
            state = PENDING
            due = due or now + timedelta(seconds=backoff_s(attempts, retry_after_s))
    return Outcome(row.id, row.message_sid, row.url, now, latency_ms, code, error, excerpt,
                   state, due, counted=True, created_at=row.date_created, lease=lease,
                   answer=answer, fallback=fallback)  # fmt: skip


def _fallback(row: Row[Any], code: int | None, now: datetime) -> dict[str, Any]:
    """The webhook owed to ``row``'s fallback URL: its parameters, with Twilio's ErrorCode
    (11205 no answer, 11200 an answer that was not 2xx) and ErrorUrl."""
    url = row.fallback_url
    params = {**row.params, "ErrorCode": "11205" if code is None else "11200", "ErrorUrl": row.url}
    return {"message_sid": row.message_sid, "account_sid": row.account_sid, "url": url,
            "endpoint": endpoint_of(url), "status": row.status, "params": params,
            "webhook_id": f"{row.message_sid}.fallback", "fallback_url": None,
            "state": PENDING, "attempts": 0, "next_attempt_at": now, "date_created": now,
            "date_updated": now}  # fmt: skip


def postponed(row: Row[Any], lease: datetime, delay_s: float, reason: str) -> Outcome:
    """Back to pending without calling the endpoint (its circuit is open); no attempt counted."""
    now = utcnow()
    return Outcome(row.id, row.message_sid, row.url, now, 0.0, None, reason, None, PENDING,
                   now + timedelta(seconds=delay_s), counted=False,
                   created_at=row.date_created, lease=lease)  # fmt: skip


def count(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        if not o.counted:
            continue
        recorder.count(CALLBACK_ATTEMPTS, outcome="retry" if o.state == PENDING else o.state)
        if o.state == "delivered":
            latency = (o.attempted_at - o.created_at).total_seconds()
            recorder.observe(STAGE_LATENCY, latency, stage="callbacks")


def record(
    session: Session, outcomes: list[Outcome], room: int = 0, skip_endpoints: Collection[str] = ()
) -> list[Row[Any]]:
    """Write attempts and new states, each only if its lease still holds (a delivery that
    outlived its lease was handed to another worker, whose result counts), and the replies an
    inbound message's webhook answered with, in the same transaction; then, committed, the
    next callback of each message whose callback settled becomes due, up to ``room`` of them
    (none to ``skip_endpoints``) claimed for the caller at once. Returns the promoted rows:
    those claimed are ``delivering``, under a lease; the rest ``pending``. Raises only before
    the outcomes are committed: a failure to promote after leaves the next callbacks held, for
    the sweeper (``promote_stranded``)."""
    attempts = [
        {"callback_id": o.callback_id, "url": o.url, "date_attempted": o.attempted_at,
         "status_code": o.status_code, "latency_ms": round(o.latency_ms, 2), "error": o.error,
         "response_excerpt": o.excerpt}
        for o in outcomes
        if o.counted
    ]  # fmt: skip
    if attempts:
        insert_rows(session, callback_attempts_table, attempts)
    now = utcnow()
    settle = kept("outcomes.settle", _settle_statement)
    plain = [_settled(o, now) for o in outcomes if o.answer is None and o.fallback is None]
    if plain:
        session.execute(settle, plain)
    for o in outcomes:  # what an answer or a failure leads to, only where the lease held
        if o.answer is None and o.fallback is None:
            continue
        if session.execute(settle.returning(c.id), _settled(o, now)).first() is None:
            continue
        if o.answer is not None:
            _reply(session, o)
        if o.fallback is not None:
            session.execute(insert(callbacks_table).values(o.fallback))
    session.commit()
    settled = {o.message_sid for o in outcomes if o.state != PENDING}
    try:
        return promote_claiming(session, settled, room, skip_endpoints)
    except Exception:  # recorded: never raise, or a retry would write the attempts twice
        session.rollback()
        log.warning("promoting the callbacks after %d settled failed; the sweeper will",
                    len(settled), exc_info=True)  # fmt: skip
        return []


def left_due(promoted: list[Row[Any]], outcomes: list[Outcome]) -> bool:
    """After :func:`record`: did it leave callbacks due that it did not claim (successors made
    due beyond the caller's room, fallbacks written due)? Only those want a claim: at a
    trickle, a claim after every settled callback found nothing, one per callback."""
    return any(row.state == PENDING for row in promoted) or any(
        o.fallback is not None for o in outcomes
    )


def _reply(session: Session, o: Outcome) -> None:
    """The replies an answer asks for; a bug in making them loses them, never the batch."""
    assert o.answer is not None
    try:
        with session.begin_nested():
            replies.answered(session, o.message_sid, *o.answer)
    except OperationalError:
        raise  # the database is away: the whole batch is recorded again later
    except Exception:
        log.exception("the replies %s's webhook answered with failed", o.message_sid,
                      extra={"sid": o.message_sid})  # fmt: skip


def _settle_statement() -> Any:
    return (
        update(callbacks_table)
        .where(c.id == bindparam("b_id"), c.state == DELIVERING,
               c.next_attempt_at == bindparam("b_lease"))
        .values(state=bindparam("b_state"), next_attempt_at=bindparam("b_due"),
                attempts=c.attempts + bindparam("b_add"), last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"), date_updated=bindparam("b_now"))
    )  # fmt: skip


def _settled(o: Outcome, now: datetime) -> dict[str, Any]:
    return {"b_id": o.callback_id, "b_lease": o.lease, "b_state": o.state,
            "b_due": o.next_attempt_at, "b_add": 1 if o.counted else 0,
            "b_code": o.status_code, "b_error": o.error, "b_now": now}  # fmt: skip
