"""Wake-up calls for the pipeline's stages, coalesced so a busy stage gets one, not thousands.

A stage's task drains every due row of its stage in batches (claims are compare-and-set, so
redelivered or duplicate wake-ups are harmless). While one wake-up for a stage is waiting in
the broker, publishing another adds nothing: a Redis key marks it pending. The stage's task
deletes the key *before* it starts to drain, so work committed after the drain began always
leads to a fresh wake-up. The key expires by itself, so a lost wake-up blocks nothing for
long, and the sweeper publishes anything that stayed due.

A process that wakes a stage it drains itself (a carrier worker applying the receipts its own
connection stored) may take the wake-up without the broker (:func:`drain_here`): no publish, no
task, no Redis call. If it dies first, what it stored waits for the sweeper's wake-up.
"""

import logging
import time
from collections.abc import Callable
from functools import lru_cache

import redis

from schemas.settings import get_settings
from workers.app import ROUTES, STAGE_TASKS, app
from workers.pipeline.throttle import redis_client

log = logging.getLogger(__name__)

PENDING_TTL_MS = 5000  # a pending mark outlives a normal queue wait; after it, anyone may publish
REDIS_COOLDOWN_S = 5.0  # after a Redis error, publish without coalescing for this long

_redis_down_until = 0.0
_here: dict[str, Callable[[], None]] = {}  # stages this process drains itself when it wakes them


@lru_cache
def _redis() -> redis.Redis | None:
    return redis_client(get_settings().redis_url)


def _key(stage: str) -> str:
    return f"{get_settings().redis_prefix}wake:{stage}"


def _publish(stage: str, sid: str | None, countdown: float | None) -> None:
    task = STAGE_TASKS[stage]
    app.send_task(task, args=[sid], queue=ROUTES[task], countdown=countdown, retry=False)


def _first_caller(stage: str, sid: str | None) -> bool:
    """True when no wake-up for the stage is pending (and marks one pending)."""
    global _redis_down_until
    client = _redis()
    if client is None or time.monotonic() < _redis_down_until:
        return True
    try:
        return bool(client.set(_key(stage), sid or "-", nx=True, px=PENDING_TTL_MS))
    except redis.RedisError as exc:
        _redis_down_until = time.monotonic() + REDIS_COOLDOWN_S
        log.warning("wake-up coalescing unavailable (%s); publishing every wake-up", exc)
        return True


def drain_here(stage: str, wake_up: Callable[[], None] | None) -> None:
    """From now on this process's wake-ups of ``stage`` call ``wake_up`` (a drain of its own)
    instead of going through the broker; None: through the broker again."""
    if wake_up is None:
        _here.pop(stage, None)
    else:
        _here[stage] = wake_up


def wake(stage: str, sid: str | None = None) -> None:
    """Ask ``stage`` to drain its due rows; raises when the broker refuses the publish."""
    here = _here.get(stage)
    if here is not None:
        here()
        return
    publish(stage, sid)


def publish(stage: str, sid: str | None = None) -> None:
    """A wake-up through the broker, for any worker of the stage's queue."""
    if not _first_caller(stage, sid):
        return
    try:
        _publish(stage, sid, None)
    except Exception:
        clear(stage)  # let the next caller try again rather than wait for the mark to expire
        raise


def wake_later(stage: str, delay_s: float) -> None:
    """A wake-up after a short wait (seconds; longer waits are the sweeper's business)."""
    _publish(stage, None, max(0.0, delay_s))


def clear(stage: str) -> None:
    """Called by a stage's task before it drains: wake-ups published from now on are kept."""
    global _redis_down_until
    client = _redis()
    if client is None or time.monotonic() < _redis_down_until:
        return
    try:
        client.delete(_key(stage))
    except redis.RedisError as exc:
        _redis_down_until = time.monotonic() + REDIS_COOLDOWN_S
        log.warning("wake-up coalescing unavailable: %s", exc)
