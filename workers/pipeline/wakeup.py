"""Wake-up calls for the pipeline's stages, coalesced so a busy stage gets one, not thousands.

A stage's task drains every due row of its stage in batches (claims are compare-and-set, so
redelivered or duplicate wake-ups are harmless). While one wake-up for a stage is waiting in
the broker, publishing another adds nothing: a Redis key marks it pending. The stage's task
deletes the key *before* it starts to drain, so work committed after the drain began always
leads to a fresh wake-up. The key expires by itself, so a lost wake-up blocks nothing for
long, and the sweeper publishes anything that stayed due.

A process that drains a stage on threads of its own (the callbacks' deliverer) may listen for
its wake-ups on Redis instead (:class:`Listener`): the waker's one script call marks the
wake-up pending and, while some process listens, pushes a signal one of them pops. No task
is published or consumed. A signal lost with its listener costs a second: every deliverer
also claims once a second unasked (workers/webhooks/pacing.py).

A process that wakes a stage it drains itself (a carrier worker applying the receipts its own
connection stored) may take the wake-up without the broker (:func:`drain_here`): no publish, no
task, no Redis call. If it dies first, what it stored waits for the sweeper's wake-up.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache

import redis
from redis.commands.core import Script

from schemas.settings import get_settings
from workers import supervision
from workers.app import ROUTES, STAGE_TASKS, app
from workers.pipeline.throttle import redis_client

log = logging.getLogger(__name__)

PENDING_TTL_MS = 5000  # a pending mark outlives a normal queue wait; after it, anyone may publish
REDIS_COOLDOWN_S = 5.0  # after a Redis error, publish without coalescing for this long
LISTENED = frozenset({"callbacks"})  # stages whose processes may listen for wake-ups on Redis
LISTEN_BLOCK_S = 1.0  # a listener's wait for a signal, and how often it says it still listens
LISTENER_TTL_MS = 3000  # a listener that stopped saying so is not counted on after this
PENDING, SIGNALLED, PUBLISH = 0, 1, 2
# KEYS: the pending mark, the signal list, the listeners' mark; ARGV: the mark's value and TTL.
_SIGNAL = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('LPUSH', KEYS[2], '1') return 1 end
return 2
"""

_redis_down_until = 0.0
_here: dict[str, Callable[[], None]] = {}  # stages this process drains itself when it wakes them


@lru_cache
def _redis() -> redis.Redis | None:
    return redis_client(get_settings().redis_url)


@lru_cache
def _signal() -> Script | None:
    client = _redis()
    return client.register_script(_SIGNAL) if client is not None else None


def _key(stage: str, kind: str = "wake") -> str:
    return f"{get_settings().redis_prefix}{kind}:{stage}"


def _publish(stage: str, sid: str | None, countdown: float | None) -> None:
    task = STAGE_TASKS[stage]
    app.send_task(task, args=[sid], queue=ROUTES[task], countdown=countdown, retry=False)


def _mark(stage: str, sid: str | None) -> int:
    """Mark a wake-up of the stage pending: PENDING when one was already, SIGNALLED when a
    listener was given it, PUBLISH when it must go through the broker."""
    global _redis_down_until
    client = _redis()
    if client is None or time.monotonic() < _redis_down_until:
        return PUBLISH
    try:
        script = _signal()
        if stage in LISTENED and script is not None:
            keys = [_key(stage), _key(stage, "signal"), _key(stage, "listening")]
            return int(script(keys=keys, args=[sid or "-", PENDING_TTL_MS]))
        return (
            PUBLISH if client.set(_key(stage), sid or "-", nx=True, px=PENDING_TTL_MS) else PENDING
        )
    except redis.RedisError as exc:
        _redis_down_until = time.monotonic() + REDIS_COOLDOWN_S
        log.warning("wake-up coalescing unavailable (%s); publishing every wake-up", exc)
        return PUBLISH


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
    """A wake-up for any worker of the stage's queue: through the broker, or a listener's."""
    if _mark(stage, sid) != PUBLISH:
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


class Listener:
    """This process's wake-ups of ``stage``, popped from Redis on a thread of its own, each
    calling ``on_wake`` (after clearing the pending mark, as a task does before it drains)."""

    def __init__(self, stage: str, on_wake: Callable[[], None]) -> None:
        self._stage, self._on_wake = stage, on_wake
        url = get_settings().redis_url
        timeout = LISTEN_BLOCK_S + 2
        self._client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=timeout)
        self._stop = threading.Event()
        self._thread = supervision.thread(f"{stage}-listener", self._loop, self._stop)

    def _loop(self) -> None:
        signal, listening = _key(self._stage, "signal"), _key(self._stage, "listening")
        while not self._stop.is_set():
            try:
                self._client.set(listening, "1", px=LISTENER_TTL_MS)
                popped = self._client.blpop([signal], timeout=LISTEN_BLOCK_S)
            except redis.RedisError as exc:  # wake-ups go through the broker meanwhile
                log.warning("listening for %s wake-ups: %s", self._stage, exc)
                self._stop.wait(LISTEN_BLOCK_S)
                continue
            if popped is not None:
                clear(self._stage)
                self._on_wake()

    def close(self) -> None:
        """Stop listening; wake-ups go through the broker until another listener says it
        listens (a signal popped meanwhile is caught by the others' next claim)."""
        self._stop.set()
        self._thread.join(LISTEN_BLOCK_S + 3)
        with contextlib.suppress(redis.RedisError):  # else it expires within LISTENER_TTL_MS
            self._client.delete(_key(self._stage, "listening"))
        self._client.close()
