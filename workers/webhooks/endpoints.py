"""One endpoint's share of a worker's callback deliveries: its lane, its adaptive limit and
its circuit breaker (an endpoint is a callback URL's scheme, host and port).

The limit adapts as TCP's window does: it starts at ``LIMIT_START``, grows by one per limit's
worth of fast answers, shrinks by one per limit's worth of answers much slower than the
endpoint's best (queueing: here or there, more in flight only waits longer), halves (at most
once per ``CUT_EVERY_S``) on a timeout, a connect error, 429 or 5xx, and stays between 1 and
``callback_max_per_host``. A fast endpoint thus gets the few deliveries at once it needs, not
dozens of threads fighting over the process's interpreter lock. A run of failures opens the
endpoint's circuit: it is not called, nor claimed for, until the circuit half-opens.
"""

import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

log = logging.getLogger(__name__)

LIMIT_START = 32  # an endpoint's first concurrency limit
LANE_DEPTH = 2  # an endpoint holding this many times its limit is not claimed for
FAST_S = 0.5  # an answer faster than this lets the endpoint's limit grow ...
QUEUED_FACTOR, QUEUED_MARGIN_S = 3.0, 0.05  # ... unless it is this much slower than its best
BEST_DRIFT = 1.01  # the best answer time forgets slowly (the endpoint or the network changed)
CUT_EVERY_S = 1.0  # a limit halves at most this often: one slow spell is one cut, not ten


class Breaker:
    """Per-endpoint circuit breaker: after N consecutive failures, stop calling for a while."""

    def __init__(self, failures: int, open_s: float) -> None:
        self._threshold, self._open_s = failures, open_s
        self._failures: dict[str, int] = defaultdict(int)
        self._open_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def open_for_s(self, endpoint: str) -> float:
        with self._lock:
            return max(0.0, self._open_until.get(endpoint, 0.0) - time.monotonic())

    def probing(self, endpoint: str) -> bool:
        """Has the circuit opened since the endpoint last answered well? Then, once it is no
        longer open, one delivery at a time probes it."""
        with self._lock:
            return self._failures.get(endpoint, 0) >= self._threshold - 1 > 0

    def open_endpoints(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [endpoint for endpoint, until in self._open_until.items() if until > now]

    def record(self, endpoint: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures.pop(endpoint, None)
                self._open_until.pop(endpoint, None)
                return
            self._failures[endpoint] += 1
            if self._failures[endpoint] >= self._threshold:
                self._open_until[endpoint] = time.monotonic() + self._open_s
                self._failures[endpoint] = self._threshold - 1  # half-open: one more re-opens
                log.warning("circuit open for %s for %.0f s", endpoint, self._open_s)


class Limit:
    """One endpoint's concurrency limit: additive increase, multiplicative decrease."""

    def __init__(self, start: int, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.value = float(min(start, self.ceiling))
        self._last_cut = 0.0
        self._best_s = FAST_S

    @property
    def slots(self) -> int:
        return int(self.value)

    def answered(self, overloaded: bool, latency_s: float) -> None:
        if overloaded:
            now = time.monotonic()
            if now - self._last_cut >= CUT_EVERY_S:
                self.value = max(1.0, self.value / 2)
                self._last_cut = now
            return
        if latency_s <= 0:  # not an answer (postponed, refused before calling): nothing learnt
            return
        self._best_s = min(self._best_s * BEST_DRIFT, latency_s)
        if latency_s > QUEUED_FACTOR * self._best_s + QUEUED_MARGIN_S:
            self.value = max(1.0, self.value - 1 / self.value)
        elif latency_s < FAST_S:
            self.value = min(float(self.ceiling), self.value + 1 / self.value)


@dataclass
class Held:
    """A claimed callback in this process, with what delivering it takes."""

    row: Row[Any]
    token: str
    secret: str
    lease: datetime  # the claim's lease, renewed while the callback waits for a slot


@dataclass
class Lane:
    limit: Limit
    waiting: deque[Held]
    in_flight: int = 0

    def full(self) -> bool:
        return self.in_flight + len(self.waiting) >= LANE_DEPTH * self.limit.slots

    def idle(self) -> bool:
        return not self.in_flight and not self.waiting

    def slots(self, breaker: "Breaker") -> int:
        """Deliveries the endpoint may have at once now: one while its circuit half-opens."""
        if self.waiting and breaker.probing(self.waiting[0].row.endpoint):
            return 1
        return self.limit.slots
