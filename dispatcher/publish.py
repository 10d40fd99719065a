"""The one place the dispatcher publishes tasks: wake-up calls carrying a message sid.

Publishing happens after the row is committed. A broker that is down costs a log line, never
the request: the row keeps its ``next_attempt_at`` and the sweeper publishes it later.
"""

import logging
import time

from schemas.models import Message
from workers.app import MEDIA_TASK, ROUTES, SEGMENT_TASK, app

log = logging.getLogger(__name__)

BROKER_COOLDOWN_S = 5.0  # after a failed publish, skip the broker this long (the sweeper covers)

_down_until = 0.0


def wake_pipeline(message: Message) -> None:
    """Ask the first stage to look at a freshly stored message."""
    global _down_until
    if time.monotonic() < _down_until:
        log.info("broker cooling down; %s waits for the sweeper", message.sid)
        return
    task = MEDIA_TASK if message.stage == "media" else SEGMENT_TASK
    try:
        app.send_task(task, args=[message.sid], queue=ROUTES[task], retry=False)
    except Exception:  # any broker failure: the committed row is safe, the sweeper publishes it
        _down_until = time.monotonic() + BROKER_COOLDOWN_S
        log.warning("publish of %s failed; the sweeper will publish it", message.sid, exc_info=True)
