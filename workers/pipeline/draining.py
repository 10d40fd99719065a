"""Draining a stage: batches until nothing is due, the budget is spent or the worker stops;
and stages a process drains on threads of its own, with no task (:class:`LocalDrain`)."""

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from workers import supervision
from workers.metrics import recorder
from workers.pipeline import wakeup

log = logging.getLogger(__name__)

DRAIN_BUDGET_S = 20.0  # one task drains this long, then hands on to a fresh wake-up
stopping = threading.Event()  # a warm shutdown began: finish the batch in hand, take no more


def drain(stage: str, batch: Callable[[], int], batch_size: int, broker: bool = True) -> None:
    """Run ``batch`` until the stage has no more due rows, the budget is spent or the worker
    is shutting down; then what is left goes to a fresh wake-up (another worker's). ``broker``:
    woken through the broker, whose pending mark is cleared first."""
    if broker:
        wakeup.clear(stage)
    deadline = time.monotonic() + DRAIN_BUDGET_S
    while not (stopping.is_set() or time.monotonic() > deadline):
        claimed = batch()
        recorder.processed(stage, claimed)
        if claimed < batch_size:
            return
    wakeup.publish(stage)


class LocalDrain:
    """A stage this process drains on threads of its own when woken (``wake``): the receipts
    its carrier connections store, applied without a publish, a task and their Redis calls
    (``here``: this process's own wake-ups of the stage come straight here); the carrier
    stage, woken by a Redis listener. One wake-up starts one thread; those that come while
    every thread drains are kept as one, for the first thread free. A wake-up lost with the
    process is the sweeper's: it wakes a stage whose rows wait."""

    def __init__(
        self, stage: str, batch: Callable[[], int], batch_size: int, *, threads: int = 1,
        here: bool = True, slots: threading.Semaphore | None = None,
    ) -> None:  # fmt: skip
        self.stage = stage
        self._slots = slots or contextlib.nullcontext()  # drains of the stage at once, shared
        self._batch, self._batch_size = batch, batch_size
        self._changed = threading.Condition()
        self._wanted = False
        self._stop = threading.Event()
        self._threads = [
            supervision.thread(f"{stage}-drain-{index}", self._loop, self._stop)
            for index in range(threads)
        ]
        self._here = here
        if here:
            wakeup.drain_here(stage, self.wake)

    def wake(self) -> None:
        with self._changed:
            self._wanted = True
            self._changed.notify()

    def _take(self) -> bool:
        """Wait (a second at most) for a wake-up and take it."""
        with self._changed:
            asked = self._changed.wait_for(lambda: self._wanted or self._stop.is_set(), 1.0)
            if not asked or self._stop.is_set():
                return False
            self._wanted = False
            return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            if stopping.is_set():  # a warm shutdown: what is asked now, close() hands on
                self._stop.wait(0.1)
                continue
            if not self._take():
                continue
            try:
                with self._slots:
                    drain(self.stage, self._batch, self._batch_size, broker=False)
            except OperationalError as exc:  # the broker's task retries it, with backoff
                log.warning("%s: the database is away (%s); handing the stage to a task",
                            self.stage, exc)  # fmt: skip
                wakeup.publish(self.stage)
                self._stop.wait(1.0)

    def close(self) -> None:
        """Finish the batches in hand; wake-ups go elsewhere; what is left is any worker's."""
        if self._here:
            wakeup.drain_here(self.stage, None)
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(10)
        if self._wanted:
            wakeup.publish(self.stage)
