"""Which worker processes are alive, per queue: for ``mycpaas_workers{queue}`` and the alert
that pages when a queue has none.

Each worker's main process writes one ``platform_state`` row (``worker:<host>:<pid>``: its
queues and the time) every ``BEAT_S`` from a thread of its own, and removes it at a warm
shutdown; a process killed with -9 stops writing, and its row counts for nothing once it is
``STALE_S`` old (and is removed by the next beat of any worker after ten times that).
"""

import logging
import os
import socket
import threading
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from schemas import state
from schemas.db import session_scope
from schemas.models import platform_state_table
from schemas.types import utcnow
from workers import supervision

log = logging.getLogger(__name__)

PREFIX = "worker:"
BEAT_S = 10.0
STALE_S = 30.0
_stop = threading.Event()
s = platform_state_table.c


def _name() -> str:
    return f"{PREFIX}{socket.gethostname()}:{os.getpid()}"[:64]


def start(queues: list[str]) -> None:
    """Beat for this process until :func:`stop`."""
    _stop.clear()
    value = ",".join(sorted(queues))
    supervision.thread("liveness", lambda: _beat(value), _stop)


def _beat(queues: str) -> None:
    while not _stop.is_set():
        try:
            with session_scope() as session:
                now = utcnow()
                state.put(session, _name(), f"{queues}|{now.isoformat()}")
                _forget_long_gone(session, now)
                session.commit()
        except Exception:  # the database may be away; the next beat tries again
            log.warning("liveness beat failed", exc_info=True)
        _stop.wait(BEAT_S)


def _forget_long_gone(session: Session, now: datetime) -> None:
    gone = now - timedelta(seconds=STALE_S * 10)
    rows = session.execute(select(s.name, s.value).where(s.name.like(f"{PREFIX}%")))
    state.remove(session, [name for name, value in rows if _seen(value) < gone])


def _seen(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.rsplit("|", 1)[1])
    except (IndexError, ValueError):
        return datetime.min.replace(tzinfo=utcnow().tzinfo)


def stop() -> None:
    """A warm shutdown: stop beating and leave at once."""
    _stop.set()
    try:
        with session_scope() as session:
            state.remove(session, [_name()])
            session.commit()
    except Exception:
        log.warning("could not remove this worker's liveness row", exc_info=True)


def alive(session: Session) -> Counter[str]:
    """Live worker processes per queue."""
    fresh = utcnow() - timedelta(seconds=STALE_S)
    count: Counter[str] = Counter()
    for (value,) in session.execute(select(s.value).where(s.name.like(f"{PREFIX}%"))):
        if _seen(value) >= fresh:
            count.update(queue for queue in value.rsplit("|", 1)[0].split(",") if queue)
    return count
