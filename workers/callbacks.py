"""The status-callback stage: signed POSTs, in order per message, retried from Postgres.

Deliveries stream through a process-wide pool: the stage's task claims as many due callbacks
as the pool has room for (``pending`` → ``delivering`` with a lease), hands each to a thread,
and returns; each result is recorded (attempt row + new state) in small batches by a recorder
thread. So one slow endpoint holds only its own threads, never a batch of others.

Per message, a callback is claimed only when no earlier one is pending or being delivered,
so statuses arrive in order. Per host, at most ``callback_max_per_host`` deliveries run at
once and a circuit breaker stops calling a host that keeps failing; both postpone a callback
without counting an attempt.

Outcomes: 2xx delivered; 410 gone (no more callbacks to that URL for the message); other 3xx
and 4xx failed for good; 429, 5xx, connect errors and timeouts retried with exponential
backoff and jitter (``Retry-After`` honoured within bounds) for about a day, then dead.
"""

import logging
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from sqlalchemy import ColumnElement, Row, and_, bindparam, exists, insert, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from schemas.credentials import auth_token, webhook_secret
from schemas.db import session_scope
from schemas.models import accounts_table, callback_attempts_table, callbacks_table
from schemas.settings import get_settings
from schemas.types import utcnow
from workers.carriers.base import parse_retry_after
from workers.claims import claim_rows
from workers.metrics import CALLBACK_ATTEMPTS, STAGE_LATENCY, recorder
from workers.outbound import GuardedTransport, OutboundRefused
from workers.signing import standard_webhook_signature, strip_fragment, twilio_signature

log = logging.getLogger(__name__)

POOL_THREADS = 64  # deliveries in flight per worker process (32: 617/s, 64: 756/s here)
BACKOFF_MAX_S = 3600.0  # retries are at least hourly
RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S = 1.0, 3600.0  # bounds on a receiver's Retry-After
HOST_BUSY_DELAY_S = 0.5  # a host at its concurrency cap: try this callback again shortly
EXCERPT_CHARS = 500  # of a response body kept in the attempt log
RECORD_EVERY_S = 0.02  # the recorder writes finished deliveries this often, in one transaction
GONE_REASON = "an earlier callback to this URL was answered 410 Gone"
USER_AGENT = "mycpaas-dispatch/0.1 (status callback)"

c = callbacks_table.c
PENDING, DELIVERING = "pending", "delivering"
OPEN_STATES = (PENDING, DELIVERING)


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


def backoff_s(attempts: int, retry_after_s: float | None) -> float:
    base = get_settings().callback_backoff_base_s
    exponential = min(BACKOFF_MAX_S, base * 2 ** max(0, attempts - 1))
    jittered = exponential * random.uniform(0.5, 1.0) + random.uniform(0, 1)
    if retry_after_s is not None:
        return min(RETRY_AFTER_MAX_S, max(RETRY_AFTER_MIN_S, retry_after_s, jittered / 2))
    return jittered


class Breaker:
    """Per-host circuit breaker: after N consecutive failures, stop calling for a while."""

    def __init__(self, failures: int, open_s: float) -> None:
        self._threshold, self._open_s = failures, open_s
        self._failures: dict[str, int] = defaultdict(int)
        self._open_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def open_for_s(self, host: str) -> float:
        with self._lock:
            return max(0.0, self._open_until.get(host, 0.0) - time.monotonic())

    def record(self, host: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures.pop(host, None)
                self._open_until.pop(host, None)
                return
            self._failures[host] += 1
            if self._failures[host] >= self._threshold:
                self._open_until[host] = time.monotonic() + self._open_s
                self._failures[host] = self._threshold - 1  # half-open: one more failure re-opens
                log.warning("circuit open for %s for %.0f s", host, self._open_s)


class Deliverer:
    """One per worker process: the HTTP client, the pool, the host limits and the recorder."""

    def __init__(self) -> None:
        settings = get_settings()
        self._timeout = httpx.Timeout(
            settings.callback_timeout_s, connect=min(2.0, settings.callback_timeout_s)
        )
        # One small client per delivery thread: a pool shared by dozens of threads spends more
        # CPU assigning requests to connections than sending them.
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self.pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="callback")
        self.room = threading.Semaphore(POOL_THREADS)
        self.breaker = Breaker(settings.callback_breaker_failures, settings.callback_breaker_open_s)
        self.per_host = settings.callback_max_per_host
        self._host_busy: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._done: list[Outcome] = []
        self._stop = threading.Event()
        self.on_flush: list[Any] = []  # callables given each flushed batch of outcomes
        self._recorder = threading.Thread(
            target=self._record_loop, name="callback-recorder", daemon=True
        )
        self._recorder.start()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self._stop.set()
        self._recorder.join(5)
        self.flush()
        for client in self._clients:
            client.close()

    # --- delivering -------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                transport=GuardedTransport(),
                timeout=self._timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
                headers={"user-agent": USER_AGENT},
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def free(self) -> int:
        """How many deliveries may start now (claims no more than this)."""
        return self.room._value  # noqa: SLF001  (a Semaphore has no public counter)

    def submit(self, row: Row[Any], token: str, secret: str) -> None:
        self.room.acquire()
        self.pool.submit(self._deliver_guarded, row, token, secret)

    def _deliver_guarded(self, row: Row[Any], token: str, secret: str) -> None:
        try:
            outcome = self._deliver(row, token, secret)
        except Exception as exc:  # never lose a claimed callback to a bug: retry it later
            log.exception("callback %s for %s crashed", row.id, row.message_sid,
                          extra={"sid": row.message_sid})  # fmt: skip
            outcome = self._outcome(row, None, 0.0, None, f"internal error: {exc}", None)
        finally:
            self.room.release()
        with self._lock:
            self._done.append(outcome)

    def _deliver(self, row: Row[Any], token: str, secret: str) -> Outcome:
        url = strip_fragment(row.url)
        host = urlsplit(url).netloc  # host and port: one endpoint's trouble stays its own
        wait = self.breaker.open_for_s(host)
        if wait > 0:
            return self._postpone(row, wait, f"circuit open for {host}")
        with self._lock:
            if self._host_busy[host] >= self.per_host:
                busy = True
            else:
                busy = False
                self._host_busy[host] += 1
        if busy:
            return self._postpone(row, HOST_BUSY_DELAY_S, f"{host} at its concurrency cap")
        try:
            return self._post(row, url, host, token, secret)
        finally:
            with self._lock:
                self._host_busy[host] -= 1

    def _post(self, row: Row[Any], url: str, host: str, token: str, secret: str) -> Outcome:
        params: dict[str, str] = row.params
        body = urlencode(params)
        stamp = int(time.time())
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio_signature(token, url, params),
            "i-twilio-idempotency-token": row.webhook_id,
            "webhook-id": row.webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": standard_webhook_signature(secret, row.webhook_id, stamp, body),
        }
        started = time.monotonic()
        deadline = started + get_settings().callback_timeout_s
        try:
            with self._client().stream("POST", url, content=body.encode(),
                                       headers=headers) as response:  # fmt: skip
                excerpt = _excerpt(response, deadline)
        except OutboundRefused as exc:
            self.breaker.record(host, ok=True)  # our refusal says nothing about the host
            return self._outcome(row, None, 0.0, None, f"refused: {exc}", "failed")
        except httpx.HTTPError as exc:
            latency = (time.monotonic() - started) * 1000
            self.breaker.record(host, ok=False)
            return self._outcome(row, None, latency, None, f"{type(exc).__name__}: {exc}", None)
        latency = (time.monotonic() - started) * 1000
        code = response.status_code
        retryable = code == 429 or code >= 500
        self.breaker.record(host, ok=not retryable)
        if 200 <= code < 300:
            state: str | None = "delivered"
        elif code == 410:
            state = "gone"
        elif retryable:
            state = None
        else:
            state = "failed"
        hint = parse_retry_after(response.headers.get("retry-after")) if retryable else None
        return self._outcome(
            row, code, latency, hint, None if state else f"HTTP {code}", state, excerpt
        )

    def _outcome(
        self, row: Row[Any], code: int | None, latency_ms: float, retry_after_s: float | None,
        error: str | None, state: str | None, excerpt: str | None = None,
    ) -> Outcome:  # fmt: skip
        now = utcnow()
        attempts = row.attempts + 1
        due = None
        if state is None:  # retry, or give up
            if attempts >= get_settings().callback_max_attempts:
                state = "dead"
            else:
                state = PENDING
                due = now + timedelta(seconds=backoff_s(attempts, retry_after_s))
        return Outcome(row.id, row.message_sid, row.url, now, latency_ms, code, error, excerpt,
                       state, due, counted=True, created_at=row.date_created,
                       lease=row.next_attempt_at)  # fmt: skip

    def _postpone(self, row: Row[Any], delay_s: float, reason: str) -> Outcome:
        now = utcnow()
        return Outcome(row.id, row.message_sid, row.url, now, 0.0, None, reason, None, PENDING,
                       now + timedelta(seconds=delay_s), counted=False,
                       created_at=row.date_created, lease=row.next_attempt_at)  # fmt: skip

    # --- recording ----------------------------------------------------------------------

    def _record_loop(self) -> None:
        while not self._stop.wait(RECORD_EVERY_S):
            try:
                self.flush()
            except Exception:  # the database may be away; outcomes stay queued for the next try
                log.exception("recording callback outcomes failed; will retry")
                time.sleep(1)

    def flush(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        if not done:
            return
        try:
            with session_scope() as session:
                record(session, done)
        except Exception:
            with self._lock:
                self._done[:0] = done
            raise
        _count(done)
        for hook in self.on_flush:
            try:
                hook(done)
            except Exception:  # a wake-up lost here is the sweeper's to publish; nothing is lost
                log.warning("after-delivery hook failed", exc_info=True)


def _excerpt(response: httpx.Response, deadline: float) -> str | None:
    """The start of the answer's body, read no further than the excerpt and no later than
    ``deadline``: an endpoint that trickles its answer cannot hold a delivery for long."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= EXCERPT_CHARS * 4:  # enough bytes for the excerpt in any UTF-8
            break
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the answer took longer than the callback timeout")
    if not size:
        return None
    return b"".join(chunks).decode(response.encoding or "utf-8", "replace")[:EXCERPT_CHARS]


def _count(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        if not o.counted:
            continue
        recorder.count(CALLBACK_ATTEMPTS, outcome="retry" if o.state == PENDING else o.state)
        if o.state == "delivered":
            latency = (o.attempted_at - o.created_at).total_seconds()
            recorder.observe(STAGE_LATENCY, latency, stage="callbacks")


def record(session: Session, outcomes: list[Outcome]) -> None:
    """Write attempts and new states, each only if its lease still holds (a delivery that
    outlived its lease was handed to another worker, whose result counts)."""
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
    session.execute(
        update(callbacks_table)
        .where(c.id == bindparam("b_id"), c.state == DELIVERING,
               c.next_attempt_at == bindparam("b_lease"))
        .values(state=bindparam("b_state"), next_attempt_at=bindparam("b_due"),
                attempts=c.attempts + bindparam("b_add"), last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"), date_updated=now),
        [
            {"b_id": o.callback_id, "b_lease": o.lease, "b_state": o.state,
             "b_due": o.next_attempt_at,
             "b_add": 1 if o.counted else 0, "b_code": o.status_code, "b_error": o.error}
            for o in outcomes
        ],
    )  # fmt: skip
    session.commit()


def claim(session: Session, limit: int) -> list[Row[Any]]:
    """Due callbacks whose message has no earlier one still open, as ``delivering`` under a
    lease (``next_attempt_at``): the lease fences what this delivery may record."""
    now = utcnow()
    earlier = aliased(callbacks_table)
    blocked = exists().where(
        and_(earlier.c.message_sid == c.message_sid, earlier.c.id < c.id,
             earlier.c.state.in_(OPEN_STATES))
    )  # fmt: skip
    lease = now + timedelta(seconds=get_settings().callback_lease_s)
    sets = {"state": DELIVERING, "next_attempt_at": lease, "date_updated": now}
    rows = claim_rows(session, callbacks_table, due=c.next_attempt_at,
                      where=[c.state == PENDING, c.next_attempt_at <= now, ~blocked],
                      still=c.state == PENDING, limit=limit, sets=sets)  # fmt: skip
    session.commit()
    return rows


def credentials(session: Session, account_sids: set[str]) -> dict[str, tuple[str, str]]:
    """(auth token, webhook secret) per account, re-derived from the secret key."""
    a = accounts_table.c
    salts = session.execute(select(a.sid, a.token_salt).where(a.sid.in_(account_sids))).all()
    return {sid: (auth_token(sid, salt), webhook_secret(sid, salt)) for sid, salt in salts}


def dispatch(session: Session, deliverer: Deliverer) -> int:
    """Claim what the pool has room for and start delivering it; returns how many."""
    room = deliverer.free()
    if room <= 0:
        return 0
    rows = claim(session, room)
    sending = _skip_gone(session, rows)
    keys = credentials(session, {row.account_sid for row in sending}) if sending else {}
    for row in sending:
        token, secret = keys[row.account_sid]
        deliverer.submit(row, token, secret)
    return len(rows)


def _skip_gone(session: Session, rows: list[Row[Any]]) -> list[Row[Any]]:
    """Skip claimed callbacks to a URL that answered 410 for their message; returns the rest,
    to be delivered. (A message's later callbacks are claimed only once the 410 is recorded.)"""
    if not rows:
        return rows
    gone = set(
        session.execute(
            select(c.message_sid, c.url).where(
                c.message_sid.in_({row.message_sid for row in rows}), c.state == "gone"
            )
        ).all()
    )
    skipped = [row.id for row in rows if (row.message_sid, row.url) in gone]
    if skipped:
        session.execute(
            update(callbacks_table)
            .where(c.id.in_(skipped), c.state == DELIVERING)
            .values(state="skipped", last_error=GONE_REASON, next_attempt_at=None,
                    date_updated=utcnow())
        )  # fmt: skip
        session.commit()
    return [row for row in rows if row.id not in skipped]


def release_lost(session: Session) -> int:
    """Callbacks whose delivering worker died (lease over) are due again; same webhook-id."""
    now = utcnow()
    released = session.execute(
        update(callbacks_table)
        .where(c.state == DELIVERING, c.next_attempt_at <= now)
        .values(state=PENDING, next_attempt_at=now, date_updated=now)
        .returning(c.id)
    ).all()
    session.commit()
    return len(released)


def due(session: Session) -> bool:
    now = utcnow()
    statement = select(c.id).where(c.state == PENDING, c.next_attempt_at <= now).limit(1)
    return session.execute(statement).first() is not None


SETTLED = ("delivered", "failed", "gone", "skipped", "dead")


def replay(
    session: Session,
    *,
    message_sid: str | None = None,
    since: datetime | None = None,
    states: tuple[str, ...] = SETTLED,
) -> int:
    """Deliver settled callbacks again (same webhook-id, so receivers can tell)."""
    now = utcnow()
    conditions: list[ColumnElement[bool]] = [c.state.in_(states)]
    if message_sid is not None:
        conditions.append(c.message_sid == message_sid)
    if since is not None:
        conditions.append(c.date_created >= since)
    count = session.execute(
        update(callbacks_table)
        .where(*conditions)
        .values(state=PENDING, attempts=0, next_attempt_at=now, date_updated=now)
        .returning(c.id)
    ).all()
    session.commit()
    return len(count)
