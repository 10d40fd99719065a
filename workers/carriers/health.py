"""Whether the carrier takes our credentials: a platform fault, not any message's.

A 401 or 403 from the carrier says the platform is misconfigured (a wrong or expired token):
failing the messages would punish them for it. So the carrier stage defers them with backoff
(they fail with 30036 only once their validity period is over), and this module makes the
fault loud in the right places: one log line per ``LOG_EVERY_S`` per process instead of one per
message, and a ``platform_state`` row that ``/readyz`` (503, naming the carrier) and the
``mycpaas_carrier_credentials_refused`` gauge read. The row is written only when this process's
view changes, and cleared by the next segment the carrier accepts.
"""

import logging
import threading
import time

from sqlalchemy import select
from sqlmodel import Session

from schemas import state
from schemas.models import platform_state_table
from schemas.types import utcnow

log = logging.getLogger(__name__)

STATE = "carrier_credentials_refused"  # its row in platform_state; absent while all is well
LOG_EVERY_S = 60.0  # a refusing carrier is logged this often per process, whatever the traffic
MESSAGE_CHARS = 150  # of the carrier's answer kept in the state row

_lock = threading.Lock()
_refusal: str | None = None  # this process's latest view: the refusal, or None (accepted)
_synced: str | None | bool = False  # what this process last wrote (False: nothing yet)
_logged_at = 0.0


def refused(message: str) -> None:
    """The carrier refused our credentials just now."""
    global _refusal, _logged_at
    with _lock:
        _refusal = f"{utcnow():%Y-%m-%dT%H:%M:%SZ} {message}"[:MESSAGE_CHARS]
        now = time.monotonic()
        if now - _logged_at < LOG_EVERY_S:
            return
        _logged_at = now
    log.error("the carrier refuses our credentials (%s): messages wait, none fails for it; "
              "check MYCPAAS_CARRIER_URL and the carrier's token", message)  # fmt: skip


def accepted() -> None:
    """The carrier accepted a segment: our credentials are good."""
    global _refusal
    with _lock:
        _refusal = None


def sync(session: Session) -> None:
    """Write this process's view to ``platform_state`` if it changed (in the caller's
    transaction, which commits it)."""
    global _synced
    with _lock:
        view = _refusal
        if view == _synced or (view is not None and isinstance(_synced, str)):
            return  # unchanged, or still refused (the first refusal's time is kept)
        _synced = view
    if view is None:
        state.remove(session, [STATE])
    else:
        state.put(session, STATE, view)


def current(session: Session) -> str | None:
    """The refusal the platform knows of (when and what), or None."""
    s = platform_state_table.c
    return session.execute(select(s.value).where(s.name == STATE)).scalar()
