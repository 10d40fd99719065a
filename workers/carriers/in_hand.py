"""How many segments a process may have handed to the carrier without their answers recorded.

A segment sent and answered, but whose answer is not committed yet, becomes an *unknown
outcome* if the worker dies: SMPP cannot look it up, so the policy sends it again (a duplicate
on the handset). Answers that wait in memory for the rest of a big batch make a ``kill -9`` cost
hundreds of duplicates; holding a place here from before the ``submit_sm`` until the answer is
committed bounds it to the capacity (the bind's window), whatever the batch and the threads.

The carrier stage hands a batch over in chunks of at most half the capacity and records each
before the next, so two task threads keep the window busy: one records while the other sends.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class InHand:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._changed = threading.Condition()

    @property
    def chunk(self) -> int:
        """Segments one hand-off sends before it records them."""
        return max(1, self.capacity // 2)

    @contextmanager
    def holding(self, count: int) -> Iterator[None]:
        """Places for ``count`` segments (at most the capacity), until the block ends."""
        count = min(count, self.capacity)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= count)
            self._free -= count
        try:
            yield
        finally:
            with self._changed:
                self._free += count
                self._changed.notify_all()

    @property
    def held(self) -> int:
        with self._changed:
            return self.capacity - self._free
