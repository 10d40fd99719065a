"""The one place the dispatcher wakes the pipeline: after its rows are committed.

A broker that is down costs a log line, never the request: the rows stay due in the
database and the sweeper wakes their stage later.
"""

import logging
import time

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
