"""Token buckets in Redis, shared by every process: per-sender throughput and API rate limits.

One Lua script keeps a bucket as ``{tokens, ts}`` under its key and answers, atomically, how
long the caller must wait. Redis's clock is used so that workers on different hosts agree.
"""

import logging
import time
from collections.abc import Sequence

import redis

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: rate (tokens/s), burst (tokens), cost, allow_debt (1: always take and
# report the wait, for schedulers; 0: take only when available, for admission control).
# Returns the wait in microseconds before the cost is (or would be) covered.
_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local allow_debt = ARGV[4] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
local wait = 0
if tokens < cost then
  wait = math.ceil((cost - tokens) * 1000000 / rate)
end
if wait == 0 or allow_debt then
  tokens = tokens - cost
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
local idle = math.ceil((burst - tokens) / rate) + 1
redis.call('EXPIRE', KEYS[1], math.max(idle, 1))
return wait
"""

REDIS_COOLDOWN_S = 5.0  # after a Redis error, skip it this long instead of stalling every caller


class TokenBucket:
    """A named family of buckets (``prefix:key``) on one Redis."""

    def __init__(self, client: redis.Redis | None, prefix: str) -> None:
        self._client = client  # None: no Redis configured (the embedded dev mode); no limits
        self._prefix = prefix
        self._script = client.register_script(_BUCKET_LUA) if client is not None else None
        self._down_until = 0.0

    def wait_s(
        self, key: str, *, rate: float, burst: float, cost: float = 1, allow_debt: bool
    ) -> float | None:
        """Seconds to wait before ``cost`` tokens are available; None when Redis is unreachable."""
        waits = self.wait_many([(key, rate, burst, cost)], allow_debt=allow_debt)
        return None if waits is None else waits[0]

    def wait_many(
        self, requests: Sequence[tuple[str, float, float, float]], *, allow_debt: bool
    ) -> list[float] | None:
        """:meth:`wait_s` for many ``(key, rate, burst, cost)`` in one round trip, in order."""
        if self._client is None or self._script is None or time.monotonic() < self._down_until:
            return None
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, rate, burst, cost in requests:
                self._script(
                    keys=[f"{self._prefix}:{key}"],
                    args=[rate, burst, cost, 1 if allow_debt else 0],
                    client=pipe,
                )
            micros = pipe.execute()
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + REDIS_COOLDOWN_S
            log.warning("token bucket %s unavailable: %s", self._prefix, exc)
            return None
        return [int(value) / 1_000_000 for value in micros]


def redis_client(url: str) -> redis.Redis | None:
    """A client with short timeouts; None when no Redis is configured (an empty URL)."""
    if not url:
        return None
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
