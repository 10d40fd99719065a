"""The one place the dispatcher wakes the pipeline: after its rows are committed.

A broker that is down costs a log line, never the request: the rows stay due in the
database and the sweeper wakes their stage later. Requests hand their wake-ups to one
publisher thread per process (:func:`wake_soon`) and answer at once: a request never waits
for the broker, and a burst of creates costs one wake-up per stage, not a thread-pool task
per create. A wake-up that a dying process still held is the sweeper's, like a lost one.
"""

import logging
import threading
import time

from workers import supervision
from workers.pipeline import wakeup

log = logging.getLogger(__name__)

BROKER_COOLDOWN_S = 5.0  # after a failed publish, skip the broker this long (the sweeper covers)

_down_until = 0.0


def wake(stage: str, sid: str | None = None) -> None:
    """Wake ``stage`` for a freshly committed row (or batch of receipts)."""
    global _down_until
    if time.monotonic() < _down_until:
        log.info("broker cooling down; %s waits for the sweeper", sid or stage)
        return
    try:
        wakeup.wake(stage, sid)
    except Exception:  # any broker failure: the committed rows are safe, the sweeper covers
        _down_until = time.monotonic() + BROKER_COOLDOWN_S
        log.warning("wake-up of %s failed; the sweeper will do it", sid or stage, exc_info=True)


_pending: dict[str, str | None] = {}  # stage → the first sid that asked, until published
_pending_lock = threading.Lock()
_asked = threading.Event()
_publisher: threading.Thread | None = None


def wake_soon(stage: str, sid: str | None = None) -> None:
    """Have the publisher thread wake ``stage`` (the rows are committed); never blocks."""
    global _publisher
    with _pending_lock:
        _pending.setdefault(stage, sid)
        if _publisher is None:
            _publisher = supervision.thread("wake-ups", _publish_loop)
    _asked.set()


def _publish_loop() -> None:
    while True:
        _asked.wait()
        _asked.clear()
        with _pending_lock:
            asked = dict(_pending)
            _pending.clear()
        for stage, sid in asked.items():
            wake(stage, sid)
