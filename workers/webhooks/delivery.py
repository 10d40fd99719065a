"""Delivering status callbacks: one lane per endpoint, adaptive concurrency, a circuit breaker.

One :class:`Deliverer` per worker process. Its claimer thread claims due callbacks
(:func:`workers.stages.callbacks.claim`) while the process has room, skipping endpoints that
are busy or broken, and puts each into its endpoint's lane; a lane starts deliveries on the
shared thread pool up to its endpoint's current limit. A callback waiting for its endpoint's slot
waits in memory, its lease renewed while it waits, and an endpoint whose lane is full is not
claimed for at all: a busy endpoint costs no database write. Only real attempts (and callbacks
put back because an endpoint's circuit opened) are written, in batches, by a recorder thread,
which also claims each settled callback's successor as it makes it due (``outcomes.record``).

Per endpoint the concurrency limit adapts and a circuit breaker stops calling one that keeps
failing (workers/webhooks/endpoints.py), so one slow endpoint holds a few threads and a
bounded lane, never the others' turn.
"""

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Row
from sqlmodel import Session

from schemas.db import session_scope
from schemas.settings import get_settings
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers import supervision
from workers.carriers.base import parse_retry_after
from workers.metrics import recorder
from workers.outbound.guard import OutboundRefused
from workers.outbound.poster import EXCERPT_BYTES, Poster, PostFailed
from workers.pipeline import wakeup
from workers.stages import callbacks
from workers.twoway import replies
from workers.webhooks import outcomes, twiml
from workers.webhooks.endpoints import LIMIT_START, Breaker, Held, Lane, Limit
from workers.webhooks.outcomes import Outcome
from workers.webhooks.pacing import CLAIM_EVERY_S, IDLE_CHECK_S, rest_after_claim
from workers.webhooks.signing import signed_headers, strip_fragment

log = logging.getLogger(__name__)

POOL_THREADS = 64  # deliveries in flight per worker process (32: 617/s, 64: 756/s here)
HELD_MAX = 4 * POOL_THREADS  # callbacks a process holds, waiting or in flight
CLAIM_MAX = 128  # callbacks one claim takes
LANES_KEPT = 1000  # idle endpoints whose learned limit is kept; beyond, idle ones are forgotten
KEYS_TTL_S = 30.0  # an account's signing keys are re-read this often (a rotated token's lag)
RECORD_EVERY_S = 0.02  # the recorder writes finished deliveries this often, in one transaction


class Deliverer:
    """One per worker process: the claimer, the lanes, the pool, the HTTP clients, the
    recorder. ``wake()`` asks it to claim; ``close()`` gives back what waits, finishes what is
    in flight and records it."""

    def __init__(self) -> None:
        settings = get_settings()
        self._timeout_s = settings.callback_timeout_s
        self._lease_s = settings.callback_lease_s
        self._ceiling = settings.callback_max_per_host
        # Connections kept per delivery thread: a pool shared by dozens of threads spends more
        # CPU assigning requests to connections than sending them.
        self._local = threading.local()
        self._posters: list[Poster] = []
        # One TLS context for them all: each new one loads the CA bundle (tens of ms of CPU), and
        # a burst to a new endpoint starts dozens of threads at once.
        self._tls = ssl.create_default_context()
        self.pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="callback")
        self.breaker = Breaker(settings.callback_breaker_failures, settings.callback_breaker_open_s)
        self._lanes: dict[str, Lane] = {}
        self._keys: dict[str, tuple[float, tuple[str, str]]] = {}  # account → (until, keys)
        self._held = 0  # claimed and not finished: waiting in a lane or in flight
        self._in_flight = 0
        self._backlog = False  # the last claim was cut short by room: more is due
        self._pause_s = CLAIM_EVERY_S  # after a claim, before the next
        self._claiming = True
        self._lock = threading.Lock()
        self._done: list[Outcome] = []
        self._outcomes = threading.Event()  # set when an outcome waits to be recorded
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self.on_flush: list[Callable[[list[Outcome]], None]] = []  # given each flushed batch
        self.on_backlog: list[Callable[[], None]] = []  # more is due than this process holds
        self._threads = [
            supervision.thread("callback-claimer", self._claim_loop, self._stop),
            supervision.thread("callback-recorder", self._record_loop, self._stop),
        ]

    def wake(self) -> None:
        """Claim what is due, as far as there is room (called by the stage's task)."""
        self._wanted.set()

    def stop_claiming(self) -> None:
        """A warm shutdown began: take no more callbacks."""
        self._claiming = False

    def close(self) -> None:
        self._claiming = False
        self._stop.set()
        self._wanted.set()
        self._threads[0].join(10)
        with self._lock:
            left = [held for lane in self._lanes.values() for held in lane.waiting]
            for lane in self._lanes.values():
                lane.waiting.clear()
            self._held -= len(left)
        if left:
            with session_scope() as session:
                callbacks.release(session, {held.row.id: held.lease for held in left})
            log.info("gave back %d waiting callbacks at shutdown", len(left))
        self.pool.shutdown(wait=True)
        self._threads[1].join(5)
        self.flush()
        for poster in self._posters:
            poster.close()

    # --- claiming -----------------------------------------------------------------------

    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait(IDLE_CHECK_S)
            if self._stop.is_set():
                return
            self._wanted.clear()
            try:
                self._renew_leases()
                if self._claiming:
                    self._claim()
            except Exception:  # the database may be away: try again shortly
                log.exception("claiming callbacks failed; will retry")
                time.sleep(1)
                self._wanted.set()
            time.sleep(self._pause_s)

    def _room(self) -> tuple[int, list[str]]:
        """How many callbacks to claim, and the endpoints to leave out of the claim."""
        skip = set(self.breaker.open_endpoints())
        with self._lock:
            skip.update(endpoint for endpoint, lane in self._lanes.items() if lane.full())
            return min(CLAIM_MAX, HELD_MAX - self._held), sorted(skip)

    def _claim(self) -> None:
        room, skip = self._room()
        if room <= 0:
            return
        started = time.monotonic()
        with session_scope() as session:
            # One transaction: the claim, the 410 check and the signing keys.
            rows = callbacks.claim(session, room, skip, commit=False)
            held = self._hold(session, rows)
        self._enqueue(held)
        # More is due after a full claim (other processes may help), or one that left some out.
        self._backlog = len(rows) == room or bool(skip)
        self._pause_s = rest_after_claim(len(rows), room, bool(skip), time.monotonic() - started)
        if len(rows) == room:
            self._wanted.set()
            for hook in self.on_backlog:
                hook()

    def _hold(self, session: Session, rows: list[Row[Any]]) -> list[Held]:
        """Claimed callbacks to deliver, each with its account's signing keys; those to a URL
        that answered 410 for their message are skipped. Commits."""
        sending = callbacks.skip_gone(session, rows)
        keys = self._signing_keys(session, {row.account_sid for row in sending})
        session.commit()
        recorder.processed("callbacks", len(rows))
        return [Held(row, *keys[row.account_sid], lease=row.next_attempt_at) for row in sending]

    def _signing_keys(self, session: Session, accounts: set[str]) -> dict[str, tuple[str, str]]:
        """(auth token, webhook secret) per account, read at most every ``KEYS_TTL_S``."""
        now = time.monotonic()
        stale = {sid for sid in accounts if self._keys.get(sid, (0.0,))[0] <= now}
        if stale:
            fresh = callbacks.credentials(session, stale)
            self._keys.update({sid: (now + KEYS_TTL_S, keys) for sid, keys in fresh.items()})
        return {sid: self._keys[sid][1] for sid in accounts}

    def _renew_leases(self) -> None:
        """Keep the leases of callbacks still waiting for a slot from running out."""
        soon = utcnow() + timedelta(seconds=self._lease_s / 2)
        with self._lock:
            due: list[tuple[Lane, Held]] = []
            for lane in self._lanes.values():
                keep = deque(held for held in lane.waiting if held.lease > soon)
                due += [(lane, held) for held in lane.waiting if held.lease <= soon]
                lane.waiting = keep
        if not due:
            return
        lease = utcnow() + timedelta(seconds=self._lease_s)
        try:
            with session_scope() as session:
                kept = callbacks.renew(session, {held.row.id: held.lease for _, held in due}, lease)
        except Exception:
            kept = set()  # unknown: the sweeper gives them back once their leases run out
            log.exception("renewing the leases of %d waiting callbacks failed", len(due))
        with self._lock:
            for lane, held in reversed(due):
                if held.row.id in kept:
                    held.lease = lease
                    lane.waiting.appendleft(held)
                else:
                    self._held -= 1
        self._pump()

    # --- delivering ---------------------------------------------------------------------

    def _enqueue(self, items: Iterable[Held]) -> None:
        with self._lock:
            for held in items:
                endpoint = held.row.endpoint
                lane = self._lanes.get(endpoint)
                if lane is None:
                    if len(self._lanes) >= LANES_KEPT:
                        self._lanes = {e: x for e, x in self._lanes.items() if not x.idle()}
                    lane = Lane(Limit(LIMIT_START, self._ceiling), deque())
                    self._lanes[endpoint] = lane
                lane.waiting.append(held)
                self._held += 1
        self._pump()

    def _pump(self) -> None:
        """Start what the lanes' limits and the pool allow, one per lane per round."""
        start: list[Held] = []
        postpone: list[tuple[Held, float]] = []
        with self._lock:
            for endpoint, lane in list(self._lanes.items()):
                wait = self.breaker.open_for_s(endpoint) if lane.waiting else 0.0
                if wait > 0:  # the circuit opened: what waits goes back until it half-opens
                    postpone += [(held, wait) for held in lane.waiting]
                    self._held -= len(lane.waiting)
                    lane.waiting.clear()
            ready = [lane for lane in self._lanes.values() if lane.waiting]
            progress = True
            while progress and self._in_flight < POOL_THREADS:
                progress = False
                for lane in ready:
                    if lane.waiting and lane.in_flight < lane.slots(self.breaker):
                        start.append(lane.waiting.popleft())
                        lane.in_flight += 1
                        self._in_flight += 1
                        progress = True
                        if self._in_flight >= POOL_THREADS:
                            break
            self._done += [
                outcomes.postponed(held.row, held.lease, wait, "circuit open")
                for held, wait in postpone
            ]
            if postpone:
                self._outcomes.set()
        for held in start:
            self.pool.submit(self._run, held)

    def _run(self, held: Held) -> None:
        overloaded, latency_s = False, 0.0
        try:
            outcome = self._deliver(held)
            overloaded = outcome.state in (callbacks.PENDING, "dead") and outcome.counted
            latency_s = outcome.latency_ms / 1000
        except Exception as exc:  # never lose a claimed callback to a bug: retry it later
            log.exception("callback %s for %s crashed", held.row.id, held.row.message_sid,
                          extra={"sid": held.row.message_sid})  # fmt: skip
            outcome = outcomes.attempted(held.row, held.lease, None, 0.0, None,
                                          f"internal error: {exc}", None)  # fmt: skip
        with self._lock:
            lane = self._lanes[held.row.endpoint]
            lane.in_flight -= 1
            lane.limit.answered(overloaded, latency_s)
            self._in_flight -= 1
            self._held -= 1
            self._done.append(outcome)
        self._outcomes.set()
        self._pump()
        if self._backlog:
            self._wanted.set()

    def _poster(self) -> Poster:
        poster: Poster | None = getattr(self._local, "poster", None)
        if poster is None:
            poster = self._local.poster = Poster(self._tls, self._timeout_s)
            with self._lock:
                self._posters.append(poster)
        return poster

    def _deliver(self, held: Held) -> Outcome:
        row, endpoint = held.row, held.row.endpoint
        wait = self.breaker.open_for_s(endpoint)
        if wait > 0:
            return outcomes.postponed(row, held.lease, wait, f"circuit open for {endpoint}")
        url = strip_fragment(row.url)
        body = urlencode(row.params)
        headers = signed_headers(held.token, held.secret, url, row.params, row.webhook_id, body)
        inbound = row.status == MessageStatus.RECEIVED.value  # its answer may ask for replies
        started = time.monotonic()
        try:
            read = twiml.MAX_BYTES if inbound else EXCERPT_BYTES
            answer = self._poster().post(url, body.encode(), headers, read)
        except OutboundRefused as exc:
            self.breaker.record(endpoint, ok=True)  # our refusal says nothing about the host
            return outcomes.attempted(row, held.lease, None, 0.0, None, f"refused: {exc}",
                                       "failed")  # fmt: skip
        except PostFailed as exc:
            latency = (time.monotonic() - started) * 1000
            self.breaker.record(endpoint, ok=False)
            return outcomes.attempted(row, held.lease, None, latency, None, str(exc),
                                       None)  # fmt: skip
        latency = (time.monotonic() - started) * 1000
        code = answer.status
        retryable = code == 429 or code >= 500
        self.breaker.record(endpoint, ok=not retryable)
        if 200 <= code < 300:
            state: str | None = "delivered"
        elif code == 410:
            state = "gone"
        elif retryable:
            state = None
        else:
            state = "failed"
        hint = parse_retry_after(answer.retry_after) if retryable else None
        asked = (
            (answer.content_type, answer.text or "") if inbound and state == "delivered" else None
        )
        return outcomes.attempted(row, held.lease, code, latency, hint,
                                   None if state else f"HTTP {code}", state,
                                   answer.excerpt, asked)  # fmt: skip

    # --- recording ----------------------------------------------------------------------

    def _record_loop(self) -> None:
        """Asleep until an outcome waits; then record, at most every ``RECORD_EVERY_S`` (what
        finishes meanwhile joins the batch)."""
        last = 0.0
        while not self._stop.is_set():
            if not self._outcomes.wait(IDLE_CHECK_S):
                continue
            pause = last + RECORD_EVERY_S - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                return  # close() records what is left
            self._outcomes.clear()  # before taking the batch: what comes after sets it again
            last = time.monotonic()
            try:
                self.flush()
            except Exception:  # the database may be away; outcomes stay queued for the next try
                log.exception("recording callback outcomes failed; will retry")
                self._outcomes.set()
                time.sleep(1)

    def flush(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        if not done:
            return
        # Successors claimed here as room allows, unless a backlog's full claims take them.
        room, skip = self._room() if self._claiming and not self._backlog else (0, [])
        try:
            with session_scope() as session:
                promoted = outcomes.record(session, done, room, skip)
                made = replies.to_wake(session)
        except Exception:
            with self._lock:
                self._done[:0] = done
            raise
        # Recorded: a failure from here on must not queue them again (attempts written twice).
        taken = [row for row in promoted if row.state == callbacks.DELIVERING]
        try:
            with session_scope() as session:
                self._enqueue(self._hold(session, taken))  # after its commit
        except Exception:
            log.warning("%d claimed callbacks wait out their leases", len(taken), exc_info=True)
        outcomes.count(done)
        for stage in made:  # replies a webhook's TwiML asked for, committed with its outcome
            try:
                wakeup.wake(stage)
            except Exception:  # committed: the sweeper wakes the stage; the rest goes on
                log.warning("waking %s for replies failed", stage, exc_info=True)
        if outcomes.left_due(promoted, done):  # what it claimed itself needs no claim
            self._wanted.set()
        for hook in self.on_flush:
            try:
                hook(done)
            except Exception:  # a wake-up lost here is the sweeper's to publish; nothing is lost
                log.warning("after-delivery hook failed", exc_info=True)
