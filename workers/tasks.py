"""The Celery tasks: thin wrappers that open a session, run a stage and wake what follows.

Every task is a wake-up call: its argument (a sid, or nothing) only says why it was sent.
The stage drains every due row, so duplicates and redeliveries find nothing and return.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from schemas.db import dispose_engine, session_scope
from schemas.settings import get_settings
from schemas.types import utcnow
from workers import liveness, retention, supervision
from workers.app import (
    CALLBACK_TASK,
    CARRIER_TASK,
    INBOUND_TASK,
    MEDIA_TASK,
    RECEIPTS_TASK,
    RETENTION_TASK,
    SEGMENT_TASK,
    SWEEP_TASK,
    app,
)
from workers.carriers.connections import Connections
from workers.carriers.factory import make_connection_driver, plan_of
from workers.carriers.routing import Router
from workers.carriers.smpp import inbox
from workers.metrics import recorder
from workers.pipeline import wakeup
from workers.pipeline.accepted import EarlyRecorder
from workers.pipeline.gather import Gatherer
from workers.pipeline.throttle import TokenBucket, redis_client
from workers.pipeline.transitions import after_commit
from workers.stages import carrier, inbound, media, receipts, segment, sweep
from workers.twoway import replies
from workers.webhooks import delivery, outcomes

log = logging.getLogger(__name__)
T = TypeVar("T")

RETENTION_BUDGET_S = 45.0  # one pass at most (the soft time limit is 60 s); the next goes on
DRAIN_BUDGET_S = 20.0  # one task drains this long, then hands on to a fresh wake-up
stopping = threading.Event()  # a warm shutdown began: finish the batch in hand, take no more
DB_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 1, "max_retries": 5}


class PerProcess(Generic[T]):
    """One object per worker process, built by the first thread that asks (only once, however
    many task threads ask at the same moment: a second Deliverer would never be closed)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def built(self) -> T | None:
        """The object if this process built it already; None otherwise (builds nothing)."""
        with self._lock:
            return self._value

    def pop(self) -> T | None:
        """Forget the object (returned, for closing; None if never built)."""
        with self._lock:
            value, self._value = self._value, None
        return value


def _make_carriers() -> Connections:
    settings = get_settings()
    plan = plan_of(settings)
    bucket = TokenBucket(redis_client(settings.redis_url), f"{settings.redis_prefix}smpp-tps")

    def smpp_parts(name: str) -> tuple[Any, ...]:
        return inbox.keep, bucket, EarlyRecorder(name), inbox.keep_inbound

    drivers = {
        name: make_connection_driver(settings, connection, smpp_parts)
        for name, connection in plan.connections.items()
        if connection.enabled
    }

    def healthy(name: str) -> bool:
        up = getattr(drivers.get(name), "up", None)
        return up() if up is not None else True

    if any(c.driver == "smpp" and c.enabled for c in plan.connections.values()):
        # What its binds store (receipts, inbound parts), this process applies itself.
        local_drains.extend([LocalDrain("receipts", apply_receipts, receipts.BATCH),
                             LocalDrain("inbound", join_inbound, inbound.BATCH)])  # fmt: skip
    return Connections(drivers, Router(plan.connections, plan.routes, healthy))


class LocalDrain:
    """A stage this process wakes itself, drained on a thread of its own: the receipts its
    carrier connections store are applied without a publish, a task and their Redis calls. A
    wake-up lost with the process is the sweeper's: it wakes a stage whose rows wait."""

    def __init__(self, stage: str, batch: Callable[[], int], batch_size: int) -> None:
        self.stage = stage
        self._batch, self._batch_size = batch, batch_size
        self._gathering = Gatherer(get_settings().carrier_gather_s)
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = supervision.thread(f"{stage}-drain", self._loop, self._stop)
        wakeup.drain_here(stage, self._wanted.set)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._wanted.wait(1.0):
                continue
            self._gathering.wait(self._stop)  # what its binds store meanwhile joins this drain
            self._wanted.clear()
            try:
                drain(self.stage, self._counted, self._batch_size, broker=False)
            except OperationalError as exc:  # the broker's task retries it, with backoff
                log.warning("%s: the database is away (%s); handing the stage to a task",
                            self.stage, exc)  # fmt: skip
                wakeup.publish(self.stage)
                self._stop.wait(1.0)

    def _counted(self) -> int:
        claimed = self._batch()
        self._gathering.claimed(claimed)
        return claimed

    def close(self) -> None:
        """Wake-ups go through the broker again; what is left is any worker's."""
        wakeup.drain_here(self.stage, None)
        self._stop.set()
        self._thread.join(10)
        if self._wanted.is_set():
            wakeup.publish(self.stage)


local_drains: list[LocalDrain] = []


def _make_bucket() -> TokenBucket:
    settings = get_settings()
    return TokenBucket(redis_client(settings.redis_url), f"{settings.redis_prefix}sender")


def _make_deliverer() -> delivery.Deliverer:
    running = delivery.Deliverer()
    running.on_flush.append(_after_callbacks)
    running.on_backlog.append(lambda: wakeup.wake("callbacks"))
    if get_settings().redis_url:  # its wake-ups come as Redis signals, not tasks
        listeners.append(wakeup.Listener("callbacks", running.wake))
    return running


listeners: list[wakeup.Listener] = []


carriers = PerProcess(_make_carriers)
carrier_gathering = PerProcess(lambda: Gatherer(get_settings().carrier_gather_s))
sender_bucket = PerProcess(_make_bucket)
fetcher = PerProcess(media.Fetcher)
deliverer = PerProcess(_make_deliverer)


def _after_callbacks(outcomes: list[outcomes.Outcome]) -> None:
    """Retries due soon need a wake-up (any worker's: this one may be gone by then)."""
    soonest = min((o.next_attempt_at for o in outcomes if o.next_attempt_at), default=None)
    if soonest is not None:
        delay = (soonest - utcnow()).total_seconds()
        if delay <= carrier.SHORT_WAIT_S:
            wakeup.wake_later("callbacks", delay)


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    dispose_engine(close=False)  # the parent's connections are not this child's
    for one in (carriers, deliverer, fetcher, carrier_gathering):
        one.pop()
    while local_drains:  # the parent's threads are not this child's
        wakeup.drain_here(local_drains.pop().stage, None)
    listeners.clear()


@worker_ready.connect
def _beat_at_start(sender: Any = None, **_: object) -> None:
    """Say this worker is alive, for each queue it consumes (workers/liveness.py)."""
    consumed = sender.app.amqp.queues.consume_from if sender is not None else {}
    liveness.start(sorted(consumed or {}))


@worker_ready.connect
def _bind_at_start(sender: Any = None, **_: object) -> None:
    """A carrier worker on SMPP binds as it starts, so receipts waiting at the SMSC come in
    before its first hand-off (a prefork pool's children bind at their first hand-off); a
    callbacks worker's deliverer starts too (a prefork child's at its first task)."""
    consumed = sender.app.amqp.queues.consume_from if sender is not None else {}
    threaded = "prefork" not in type(getattr(sender, "pool", None)).__module__
    smpp = any(c.driver == "smpp" for c in plan_of(get_settings()).connections.values())
    if smpp and "carrier" in consumed and threaded:
        carriers()
    if "callbacks" in consumed and threaded:  # it listens for wake-ups from the start
        deliverer()


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_clients(**_: object) -> None:
    for one in (carriers, fetcher, deliverer):  # a Deliverer finishes and records its deliveries
        built = one.pop()
        if built is not None:
            built.close()
    while local_drains:  # after the carriers: what their last binds stored is woken too
        local_drains.pop().close()
    while listeners:
        listeners.pop().close()
    recorder.flush()


@worker_shutting_down.connect
def _stop_draining(**_: object) -> None:
    stopping.set()
    liveness.stop()
    while listeners:  # wake-ups go to the processes that still claim
        listeners.pop().close()
    running = deliverer.built()
    if running is not None:
        running.stop_claiming()


@contextmanager
def status_changes() -> Iterator[Session]:
    """A session for a batch that may change statuses: the callbacks they owe (committed by
    then) get their stage woken at the end."""
    with session_scope() as session:
        yield session
        wake_owed(session)


def wake_owed(session: Session) -> None:
    """Once a commit wrote status changes, mid-batch too: the callbacks they owe go now (a
    ``sending`` callback does not wait for the carrier's answer). A broker that refuses the
    wake-up fails nothing committed, nor the batch's hand-off: the sweeper wakes the stage."""
    if not after_commit(session):
        return
    try:
        wakeup.wake("callbacks")
    except Exception:
        log.warning("waking the callbacks stage failed; the sweeper will", exc_info=True)


def drain(stage: str, batch: Callable[[], int], batch_size: int, broker: bool = True) -> None:
    """Run ``batch`` until the stage has no more due rows, the budget is spent or the worker
    is shutting down; then what is left goes to a fresh wake-up (another worker's). ``broker``:
    woken through the broker, whose pending mark is cleared first."""
    if broker:
        wakeup.clear(stage)
    deadline = time.monotonic() + DRAIN_BUDGET_S
    while (claimed := batch()) >= batch_size:
        recorder.processed(stage, claimed)
        if stopping.is_set() or time.monotonic() > deadline:
            wakeup.publish(stage)
            return
    recorder.processed(stage, claimed)


@app.task(name=SEGMENT_TASK, **DB_RETRY)
def segment_task(_sid: str | None = None) -> None:
    def batch() -> int:
        with session_scope() as session:
            claimed = segment.segment_batch(session)
        if claimed:
            wakeup.wake("carrier")
        return claimed

    drain("segment", batch, segment.BATCH)


@app.task(name=MEDIA_TASK, **DB_RETRY)
def media_task(_sid: str | None = None) -> None:
    def batch() -> int:
        with status_changes() as session:
            claimed, handed_on, retry_in_s = media.fetch_batch(session, fetcher())
        if handed_on:
            wakeup.wake("segment")
        if retry_in_s is not None:
            wakeup.wake_later("media", retry_in_s)
        return claimed

    drain("media", batch, media.BATCH)


@app.task(name=CARRIER_TASK, **DB_RETRY)
def carrier_task(_sid: str | None = None) -> None:
    # While messages keep coming, the wake-up stays pending a moment: what intake commits
    # meanwhile joins this claim instead of publishing wake-ups of its own.
    gathering = carrier_gathering()
    gathering.wait(stopping)

    def batch() -> int:
        with status_changes() as session:
            result = carrier.hand_off_batch(session, carriers(), sender_bucket(), wake_owed)
            early = carrier.early_receipts_waiting(session, result.carrier_ids)
        gathering.claimed(result.claimed)
        if early:
            wakeup.wake("receipts")
        if result.retry_in_s is not None and result.retry_in_s <= carrier.SHORT_WAIT_S:
            wakeup.wake_later("carrier", result.retry_in_s)
        return result.claimed

    drain("carrier", batch, carrier.BATCH)


def apply_receipts() -> int:
    with status_changes() as session:
        return receipts.apply_batch(session)


@app.task(name=RECEIPTS_TASK, **DB_RETRY)
def receipts_task(_sid: str | None = None) -> None:
    drain("receipts", apply_receipts, receipts.BATCH)


def join_inbound() -> int:
    with status_changes() as session:
        joined = inbound.join_batch(session)
        made = replies.to_wake(session)
    for stage in made:  # keywords' automatic replies; an MMS's media to fetch
        wakeup.wake(stage)
    return joined


@app.task(name=INBOUND_TASK, **DB_RETRY)
def inbound_task(_sid: str | None = None) -> None:
    drain("inbound", join_inbound, inbound.BATCH)


@app.task(name=CALLBACK_TASK)
def callbacks_task(_sid: str | None = None) -> None:
    # The process's deliverer claims and delivers on threads of its own, as its endpoints have
    # room; this wake-up only tells it that something became due.
    wakeup.clear("callbacks")
    if not stopping.is_set():
        deliverer().wake()


@app.task(name=RETENTION_TASK, **DB_RETRY)
def retention_task() -> None:
    # Within the task's time limit; what is left waits for the next pass.
    retention.run(budget_s=RETENTION_BUDGET_S)


@app.task(name=SWEEP_TASK, **DB_RETRY)
def sweep_task() -> None:
    with session_scope() as session:
        report = sweep.sweep(session)
    if report.reclaimed or report.released or report.woken:
        log.info("sweep: released %d scheduled, reclaimed %d leases, woke %s",
                 len(report.released), len(report.reclaimed), report.woken,
                 extra={"sids": report.reclaimed + report.released})  # fmt: skip
