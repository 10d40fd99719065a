"""Status callbacks in the record: what is owed, claiming it, recording what happened.

Per message, statuses arrive in order: at most one callback of a message is pending or being
delivered. One owed while an earlier one of its message is still open is written ``held`` (not
due, outside the claim's index) and :func:`promote` makes it due once the earlier one settles.
Both sides act after their own commit, so whichever commits last sees the other's row: see
:func:`workers.pipeline.transitions.after_commit` and :func:`record`; the sweeper promotes what
a crash between the two left held. A claim skips endpoints the caller names (busy or broken
ones, see workers/webhooks/delivery.py), so a callback waits in the database, due, until its
endpoint has room: a busy endpoint costs no write.

Outcomes: 2xx delivered; 410 gone (no more callbacks to that URL for the message); other 3xx
and 4xx failed for good; 429, 5xx, connect errors and timeouts retried with exponential
backoff and jitter (``Retry-After`` honoured within bounds) for about a day, then dead.
Each result is recorded only under the claim's lease (``next_attempt_at`` while
``delivering``): a delivery that outlived its lease changes nothing.
"""

import logging
import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    ColumnElement,
    Row,
    bindparam,
    case,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)  # fmt: skip
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import aliased
from sqlmodel import Session

from schemas.credentials import auth_token, webhook_secret
from schemas.db import any_of, constant
from schemas.models import accounts_table, callback_attempts_table, callbacks_table
from schemas.settings import get_settings
from schemas.types import utcnow
from workers.metrics import CALLBACK_ATTEMPTS, CALLBACK_RESCUES, STAGE_LATENCY, recorder
from workers.pipeline.claims import claim_rows
from workers.twoway import replies
from workers.webhooks.signing import strip_fragment

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 3600.0  # retries are at least hourly
RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S = 1.0, 3600.0  # bounds on a receiver's Retry-After
ENDPOINT_CHARS = 300  # callbacks.endpoint's width; longer only with an absurd userinfo
GONE_REASON = "an earlier callback to this URL was answered 410 Gone"

c = callbacks_table.c
PENDING, DELIVERING = "pending", "delivering"
HELD = "held"  # behind an earlier callback of its message that is still open; not due
OPEN_STATES = (PENDING, DELIVERING, HELD)
STRANDED_AFTER = timedelta(seconds=2)  # a held callback the sweeper may promote, at the earliest
STRANDED_BATCH = 1000  # messages one sweep looks at for them


def endpoint_of(url: str) -> str:
    """``scheme://host:port`` of a callback URL: what one endpoint's limits and breaker cover."""
    parts = urlsplit(strip_fragment(url))
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"[:ENDPOINT_CHARS]


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
    """The outcome of a real attempt; ``state`` None means retry (or dead, once out of tries)."""
    now = utcnow()
    attempts = row.attempts + 1
    due = None
    if state is None:
        if attempts >= get_settings().callback_max_attempts:
            state = "dead"
        else:
            state = PENDING
            due = now + timedelta(seconds=backoff_s(attempts, retry_after_s))
    return Outcome(row.id, row.message_sid, row.url, now, latency_ms, code, error, excerpt,
                   state, due, counted=True, created_at=row.date_created, lease=lease,
                   answer=answer)  # fmt: skip


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


def record(session: Session, outcomes: list[Outcome]) -> None:
    """Write attempts and new states, each only if its lease still holds (a delivery that
    outlived its lease was handed to another worker, whose result counts), and the replies an
    inbound message's webhook answered with, in the same transaction; then, committed, the
    next callback of each message whose callback settled becomes due."""
    attempts = [
        {"callback_id": o.callback_id, "url": o.url, "date_attempted": o.attempted_at,
         "status_code": o.status_code, "latency_ms": round(o.latency_ms, 2), "error": o.error,
         "response_excerpt": o.excerpt}
        for o in outcomes
        if o.counted
    ]  # fmt: skip
    if attempts:
        session.execute(insert(callback_attempts_table), attempts)
    now = utcnow()
    settle = (
        update(callbacks_table)
        .where(c.id == bindparam("b_id"), c.state == DELIVERING,
               c.next_attempt_at == bindparam("b_lease"))
        .values(state=bindparam("b_state"), next_attempt_at=bindparam("b_due"),
                attempts=c.attempts + bindparam("b_add"), last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"), date_updated=now)
    )  # fmt: skip
    plain = [_settled(o) for o in outcomes if o.answer is None]
    if plain:
        session.execute(settle, plain)
    for o in outcomes:  # an answer's replies are made only where its lease held
        if o.answer is not None and session.execute(settle.returning(c.id), _settled(o)).first():
            _reply(session, o)
    session.commit()
    promote(session, {o.message_sid for o in outcomes if o.state != PENDING})


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


def _settled(o: Outcome) -> dict[str, Any]:
    return {"b_id": o.callback_id, "b_lease": o.lease, "b_state": o.state,
            "b_due": o.next_attempt_at, "b_add": 1 if o.counted else 0,
            "b_code": o.status_code, "b_error": o.error}  # fmt: skip


def _per_message(message_sids: Collection[str]) -> Any:
    """Per message: its first held callback and whether one is pending or being delivered.
    Read through the message index alone: a plan that also consulted the states' index (stale
    statistics on a young table) scanned every open callback once per message."""
    return (
        select(
            c.message_sid,
            func.min(c.id).filter(c.state == HELD).label("first_held"),
            func.max(case((c.state.in_((PENDING, DELIVERING)), 1), else_=0)).label("busy"),
        )
        .where(any_of(c.message_sid, message_sids))
        .group_by(c.message_sid)
        .subquery()
    )


def open_for(session: Session, message_sids: Collection[str]) -> set[str]:
    """Those of ``message_sids`` with a callback not yet settled (a new one waits behind it)."""
    each = _per_message(message_sids)
    return set(
        session.execute(
            select(each.c.message_sid).where((each.c.busy == 1) | each.c.first_held.is_not(None))
        ).scalars()
    )


def promote(session: Session, message_sids: Collection[str]) -> list[str]:
    """Make each message's first held callback due where none of its callbacks is pending or
    being delivered; commits. Two promotes of one message pick the same row: one of them
    moves it. Returns the messages whose callback was promoted."""
    if not message_sids:
        return []
    each = _per_message(message_sids)
    free = session.execute(
        select(each.c.first_held).where(each.c.first_held.is_not(None), each.c.busy == 0)
    ).scalars()
    # Updated by id, in a statement of its own: as one statement with the read above as its
    # subquery, the planner may start from the states' index (every held row, and each dead
    # version of one) and did: 40-700 ms a call with a million messages stored.
    ids = list(free)
    sids: list[str] = []
    if ids:
        now = utcnow()
        promoted = session.execute(
            update(callbacks_table)
            .where(any_of(c.id, ids), c.state == HELD)
            .values(state=PENDING, next_attempt_at=now, date_updated=now)
            .returning(c.message_sid)
        ).scalars()
        sids = list(promoted)
    session.commit()
    return sids


def promote_stranded(session: Session) -> list[str]:
    """Sweeper's net: held callbacks whose message has none open any more (a process died
    between committing a settled callback, or a held one, and promoting). Counted."""
    held_before = utcnow() - STRANDED_AFTER
    # Only those with nothing out: during an endpoint's outage thousands of messages hold
    # callbacks behind a retrying one, and they must not fill the batch. coalesce() keeps the
    # states' index out of the per-row check (see promote), leaving the message index.
    o = aliased(callbacks_table)
    busy = exists().where(
        o.c.message_sid == c.message_sid,
        func.coalesce(o.c.state, "").in_((PENDING, DELIVERING)),
    )
    stale = session.execute(
        select(c.message_sid)
        .where(c.state == HELD, c.date_updated < held_before, ~busy)
        .group_by(c.message_sid)
        .order_by(func.min(c.date_updated))
        .limit(STRANDED_BATCH)
    ).scalars()
    rescued = promote(session, list(stale))
    for sid in rescued:
        recorder.count(CALLBACK_RESCUES)
        log.warning("%s had a callback held behind settled ones; the sweeper let it go", sid,
                    extra={"sid": sid})  # fmt: skip
    return rescued


def claim(session: Session, limit: int, skip_endpoints: Collection[str] = ()) -> list[Row[Any]]:
    """Due callbacks, as ``delivering`` under a lease (``next_attempt_at``): the lease fences
    what this delivery may record. A message has at most one callback pending or delivering
    (the rest are held), so any due one may go. Callbacks to ``skip_endpoints`` stay pending
    (due) for a claim that has room for them."""
    now = utcnow()
    where = [c.state == constant(PENDING), c.next_attempt_at <= now]
    if skip_endpoints:
        where.append(c.endpoint.not_in(list(skip_endpoints)))
    lease = now + timedelta(seconds=get_settings().callback_lease_s)
    sets = {"state": DELIVERING, "next_attempt_at": lease, "date_updated": now}
    rows = claim_rows(session, callbacks_table, due=c.next_attempt_at, where=where,
                      still=c.state == PENDING, limit=limit, sets=sets)  # fmt: skip
    session.commit()
    return rows


def renew(session: Session, held: dict[int, datetime], lease: datetime) -> set[int]:
    """Move the leases of claimed callbacks (id → current lease) to ``lease``; returns the ids
    still held (a lease the sweeper already took back is not renewed)."""
    if not held:
        return set()
    renewed = session.execute(
        update(callbacks_table)
        .where(c.state == DELIVERING, tuple_(c.id, c.next_attempt_at).in_(list(held.items())))
        .values(next_attempt_at=lease)
        .returning(c.id)
    ).scalars()
    ids = set(renewed)
    session.commit()
    return ids


def release(session: Session, held: dict[int, datetime]) -> int:
    """Give claimed callbacks (id → lease) back, due now, for any worker: no attempt counted."""
    if not held:
        return 0
    now = utcnow()
    released = session.execute(
        update(callbacks_table)
        .where(c.state == DELIVERING, tuple_(c.id, c.next_attempt_at).in_(list(held.items())))
        .values(state=PENDING, next_attempt_at=now, date_updated=now)
        .returning(c.id)
    ).all()
    session.commit()
    return len(released)


def credentials(session: Session, account_sids: set[str]) -> dict[str, tuple[str, str]]:
    """(auth token, webhook secret) per account, re-derived from the secret key."""
    a = accounts_table.c
    salts = session.execute(select(a.sid, a.token_salt).where(any_of(a.sid, account_sids))).all()
    return {sid: (auth_token(sid, salt), webhook_secret(sid, salt)) for sid, salt in salts}


def skip_gone(session: Session, rows: list[Row[Any]]) -> list[Row[Any]]:
    """Skip claimed callbacks to a URL that answered 410 for their message; returns the rest,
    to be delivered. (A message's later callbacks are claimed only once the 410 is recorded.)"""
    if not rows:
        return rows
    gone = set(
        session.execute(
            select(c.message_sid, c.url).where(
                any_of(c.message_sid, {row.message_sid for row in rows}), c.state == "gone"
            )
        ).all()
    )
    skipped = [row.id for row in rows if (row.message_sid, row.url) in gone]
    if skipped:
        session.execute(
            update(callbacks_table)
            .where(any_of(c.id, skipped), c.state == DELIVERING)
            .values(state="skipped", last_error=GONE_REASON, next_attempt_at=None,
                    date_updated=utcnow())
        )  # fmt: skip
        session.commit()
        promote(session, {row.message_sid for row in rows if row.id in skipped})
    return [row for row in rows if row.id not in skipped]


def release_lost(session: Session) -> int:
    """Callbacks whose delivering worker died (lease over) are due again; same webhook-id."""
    now = utcnow()
    released = session.execute(
        update(callbacks_table)
        .where(c.state == constant(DELIVERING), c.next_attempt_at <= now)
        .values(state=PENDING, next_attempt_at=now, date_updated=now)
        .returning(c.id)
    ).all()
    session.commit()
    return len(released)


def due(session: Session) -> bool:
    now = utcnow()
    statement = select(c.id).where(c.state == constant(PENDING), c.next_attempt_at <= now).limit(1)
    return session.execute(statement).first() is not None


SETTLED = ("delivered", "failed", "gone", "skipped", "dead")


def replay(
    session: Session,
    *,
    message_sid: str | None = None,
    since: datetime | None = None,
    states: tuple[str, ...] = SETTLED,
) -> int:
    """Deliver settled callbacks again (same webhook-id, so receivers can tell), each message's
    in their order: they are held, and the first of each message made due when none of its
    callbacks is still out."""
    now = utcnow()
    conditions: list[ColumnElement[bool]] = [c.state.in_(states)]
    if message_sid is not None:
        conditions.append(c.message_sid == message_sid)
    if since is not None:
        conditions.append(c.date_created >= since)
    replayed = session.execute(
        update(callbacks_table)
        .where(*conditions)
        .values(state=HELD, attempts=0, next_attempt_at=None, date_updated=now)
        .returning(c.message_sid)
    ).scalars()
    sids = list(replayed)
    session.commit()
    promote(session, set(sids))
    return len(sids)
