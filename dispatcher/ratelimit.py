"""Admission control on create: a per-account token bucket in Redis, shared by all API processes.

When Redis is unreachable the API admits (fails open): refusing every send because the rate
limiter is down would turn a limiter outage into a platform outage.
"""

from functools import lru_cache

from schemas.settings import get_settings
from workers.pipeline.throttle import TokenBucket, redis_client


@lru_cache
def _bucket() -> TokenBucket:
    settings = get_settings()
    return TokenBucket(redis_client(settings.redis_url), f"{settings.redis_prefix}api-rate")


def admit(account_sid: str, count: int = 1) -> bool:
    """May the account create ``count`` messages now? (A bulk create costs one per message.)"""
    settings = get_settings()
    if settings.api_rate_limit_per_s <= 0:
        return True
    wait = _bucket().wait_s(
        account_sid,
        rate=settings.api_rate_limit_per_s,
        burst=max(settings.api_rate_burst, count),
        cost=count,
        allow_debt=False,
    )
    return wait is None or wait == 0
