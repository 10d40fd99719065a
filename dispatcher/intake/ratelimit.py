"""Admission control on create: a per-account token bucket in Redis, shared by all API processes.

Each API process takes an account's tokens from Redis a few at a time, ``GRANT_S`` worth of
its rate (at the default 2,000/s: 20), and spends them itself: one Redis call per 20 creates
instead of one per create, which cost a quarter of a create's CPU in the API process (0.32 of
1.24 ms, ``scripts/bench_creates.py --server-env MYCPAAS_API_RATE_LIMIT_PER_S=100000`` against
``=0``). Tokens a process has not spent within ``GRANT_TTL_S`` are dropped, so the processes
never hold more than a sliver of an account's rate between them; an account limited to under
``1 / GRANT_S`` per second takes one token per create, as before.

When Redis is unreachable the API admits (fails open): refusing every send because the rate
limiter is down would turn a limiter outage into a platform outage.
"""

import threading
import time
from functools import lru_cache

from schemas.settings import get_settings
from workers.pipeline.throttle import TokenBucket, redis_client

GRANT_S = 0.01  # a process takes this many seconds of an account's rate at once
GRANT_TTL_S = 0.1  # and drops what it has not spent after this long


class Admission:
    """One per API process: the tokens it took from the shared buckets and has not spent."""

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket
        self._granted: dict[str, tuple[int, float]] = {}  # account → (tokens, spend before)
        self._lock = threading.Lock()

    def admit(self, account_sid: str, count: int, rate: float, burst: int) -> bool:
        """May the account create ``count`` messages now, at ``rate`` per second and ``burst``?"""
        if count == 1 and self._spend(account_sid):
            return True
        grant = max(count, int(rate * GRANT_S))
        burst = max(burst, count)
        if grant > count:
            wait = self._wait(account_sid, grant, rate, burst)
            if wait is None or wait == 0:
                with self._lock:
                    left, until = self._granted.get(account_sid, (0, 0.0))
                    now = time.monotonic()
                    kept = left if until > now else 0
                    self._granted[account_sid] = (kept + grant - count, now + GRANT_TTL_S)
                return True
            if grant - wait * rate < count:  # not even ``count`` tokens are left: no 2nd call
                return False
        wait = self._wait(account_sid, count, rate, burst)
        return wait is None or wait == 0

    def _spend(self, account_sid: str) -> bool:
        with self._lock:
            left, until = self._granted.get(account_sid, (0, 0.0))
            if left <= 0 or until <= time.monotonic():
                self._granted.pop(account_sid, None)
                return False
            self._granted[account_sid] = (left - 1, until)
            return True

    def _wait(self, account_sid: str, cost: int, rate: float, burst: int) -> float | None:
        """0 when ``cost`` tokens were taken; else the wait for them (None: Redis is away)."""
        return self._bucket.wait_s(account_sid, rate=rate, burst=burst, cost=cost,
                                   allow_debt=False)  # fmt: skip


@lru_cache
def _admission() -> Admission:
    settings = get_settings()
    client = redis_client(settings.redis_url)
    return Admission(TokenBucket(client, f"{settings.redis_prefix}api-rate"))


def admit(account_sid: str, count: int = 1) -> bool:
    """May the account create ``count`` messages now? (A bulk create costs one per message.)"""
    settings = get_settings()
    if settings.api_rate_limit_per_s <= 0:
        return True
    return _admission().admit(
        account_sid, count, settings.api_rate_limit_per_s, settings.api_rate_burst
    )
