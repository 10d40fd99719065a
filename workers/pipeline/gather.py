"""A stage woken while its work keeps coming waits a moment for more before it claims.

At a steady rate every message would otherwise be a batch of its own in every stage: a
wake-up, a task, a claim and a record each, the same fixed cost as a batch of a hundred. So a
woken task whose stage took at least one row per gathering window over the last second first
waits that window, then claims. Its stage's wake-up stays pending meanwhile, so the creates
of those milliseconds publish nothing, and its claim takes them all; downstream, their
receipts and callbacks come together too. At a trickle (fewer rows a second than windows)
nothing is gathered and nothing waits: the next message is not worth the wait.

The wait is latency bought for CPU: each message waits at most one window. Nothing in it is
held: the rows are committed and due, so a worker that dies while it waits leaves them to the
next wake-up or the sweeper, as before.
"""

import threading
import time
from collections import deque

RATE_WINDOW_S = 1.0  # the rate that decides whether a window gathers anything is over this long


class Gatherer:
    """One per stage and process; ``claimed`` after each claim, ``wait`` before the first."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._claims: deque[tuple[float, int]] = deque()  # (monotonic time, rows claimed)

    def claimed(self, rows: int) -> None:
        if rows and self.window_s > 0:
            with self._lock:
                self._claims.append((time.monotonic(), rows))

    def rate(self) -> float:
        """Rows claimed a second, over the last ``RATE_WINDOW_S``."""
        since = time.monotonic() - RATE_WINDOW_S
        with self._lock:
            while self._claims and self._claims[0][0] < since:
                self._claims.popleft()
            return sum(rows for _, rows in self._claims) / RATE_WINDOW_S

    def wait(self, stop: threading.Event) -> float:
        """Wait one window if at least one more row is due to come within it (returns early
        when ``stop`` is set); returns the seconds waited."""
        if self.window_s <= 0 or self.rate() * self.window_s < 1:
            return 0.0
        stop.wait(self.window_s)
        return self.window_s
