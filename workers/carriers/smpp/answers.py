"""Accepted parts recorded as their answers arrive, so a crash costs at most a window.

A part sent and accepted whose answer is not committed yet becomes an *unknown outcome* if the
worker dies: SMPP cannot look it up, so the policy sends it again (a duplicate on the handset).
A hand-off holds the answers of its whole batch until the last one is in, so a ``kill -9`` used
to leave a batch's worth (a couple of hundred parts) to send twice.

So each part takes a place before its ``submit_sm`` leaves (:meth:`AnswerRecorder.place`) and
keeps it until its answer is settled: refused, unanswered or not sent at once; accepted once
its carrier id is committed. A thread of the recorder commits the carrier ids of every accepted
part as they come, several per transaction (``on_accepted``: the segments' own update, done early,
so it costs no extra row version), then frees their places. With as many places as the window,
at most a window's worth of outcomes is ever unknown, whatever the batch and the threads.

The message itself still moves to ``sent`` with its batch; a receipt for a part recorded early
waits until then (the receipts stage matches only parts of messages past ``sending``).
"""

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from workers import supervision

log = logging.getLogger(__name__)

# A commit per answer would cost more CPU than the answer: the recorder gathers half a window's
# worth, or what came within GATHER_S, per transaction (each place is held that much longer).
GATHER_S = 0.005
RETRY_S = 1.0  # after the database refused a batch of carrier ids
AcceptedSink = Callable[[list[tuple[str, str]]], None]  # (reference, carrier id) pairs


@dataclass(frozen=True)
class _Accepted:
    reference: str
    carrier_id: str


class AnswerRecorder:
    """Made on the driver's loop; ``place`` and ``settle`` are called there, the sink on a
    thread of the recorder's own."""

    def __init__(self, on_accepted: AcceptedSink, places: int) -> None:
        self._on_accepted = on_accepted
        self._loop = asyncio.get_running_loop()
        self._places = asyncio.Semaphore(places)
        self._gather = max(1, places // 2)
        self._queue: queue.SimpleQueue[_Accepted | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = supervision.thread("smpp answers", self._run)

    async def place(self) -> None:
        """Wait for a place for one more part in flight or unrecorded."""
        await self._places.acquire()

    def settle(self, reference: str, carrier_id: str | None) -> None:
        """The part's answer is in: accepted under ``carrier_id`` (its place is freed once that
        is committed), or anything else (freed now)."""
        if carrier_id is None:
            self._places.release()
        else:
            self._queue.put(_Accepted(reference, carrier_id))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            until = time.monotonic() + GATHER_S
            while len(batch) < self._gather:
                try:
                    item = self._queue.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._record(batch)
            for _ in batch:
                self._loop.call_soon_threadsafe(self._places.release)

    def _record(self, batch: list[_Accepted]) -> None:
        """Commit the batch's carrier ids; while the database refuses, try again and keep the
        places (parts that find none are not sent: a crash meanwhile costs a window at most).
        Given up only at close: the hand-off records them with its batch if it still can."""
        pairs = [(item.reference, item.carrier_id) for item in batch]
        while True:
            try:
                self._on_accepted(pairs)
                return
            except Exception as exc:
                log.warning("smpp: %d carrier ids not recorded yet (%s); trying again in %g s",
                            len(batch), exc, RETRY_S)  # fmt: skip
            if self._closing.wait(RETRY_S):
                return

    def close(self) -> None:
        """Record what is queued, then stop (after the loop's last hand-off)."""
        self._queue.put(None)
        self._thread.join(10)
        self._closing.set()  # a database still away: stop retrying
        self._thread.join(RETRY_S + 1)
