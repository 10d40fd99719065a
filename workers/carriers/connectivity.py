"""Whether the platform can reach its carrier: what ``/readyz``, ``/metrics`` and ``mycpaas
queues`` say besides the queues.

Each carrier worker process writes its view into ``platform_state``, one row per process
(``carrier_link:<host>:<pid>``): ``up``, or ``down`` since when and why, with the time of the
report. Readers take the rows reported within ``STALE_S`` (a process killed with -9 stops
reporting and drops out) and call the carrier down when every fresh row says so.

- **SMPP**: the driver's loop reports every ``REPORT_EVERY_S`` (one row write per process,
  whatever the traffic); a bind that is down for less than ``GRACE_S`` still counts as up, so a
  reconnect is no alarm. :func:`watch_links` runs on the driver's loop.
- **HTTP**: a hand-off that cannot connect marks the process down, the next answer up; written
  by the carrier stage in its own transaction, with the state's time refreshed at most every
  ``REPORT_EVERY_S``. A process that has sent nothing for ``STALE_S`` drops out: an HTTP
  carrier nobody asks is not known to be down.
"""

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from schemas import state as platform_state
from schemas.db import session_scope
from schemas.models import platform_state_table
from schemas.types import utcnow

log = logging.getLogger(__name__)

PREFIX = "carrier_link:"
REPORT_EVERY_S = 5.0
GRACE_S = 5.0  # down for less than this is a reconnect, not an outage
STALE_S = 30.0  # a row older than this belongs to a process that stopped reporting
STAMP = "%Y-%m-%dT%H:%M:%SZ"
VALUE_CHARS = 200


@dataclass(frozen=True)
class LinkState:
    connection: str
    up: bool
    since: datetime  # when it went up or down
    reported: datetime
    detail: str = ""

    def encode(self) -> str:
        fields = ("up" if self.up else "down", self.connection,
                  f"{self.reported:{STAMP}}", f"{self.since:{STAMP}}", self.detail)  # fmt: skip
        return "|".join(fields)[:VALUE_CHARS]

    @classmethod
    def decode(cls, value: str) -> "LinkState":
        state, connection, reported, since, detail = value.split("|", 4)
        return cls(connection, state == "up", _parse(since), _parse(reported), detail)


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)


def row_name(connection: str) -> str:
    return f"{PREFIX}{connection}:{socket.gethostname()}:{os.getpid()}"[:64]


def write(session: Session, state: LinkState) -> None:
    """This process's row for the connection, in the caller's transaction; rows of processes
    gone long ago are removed."""
    platform_state.put(session, row_name(state.connection), state.encode())
    gone = utcnow() - timedelta(seconds=STALE_S * 10)
    platform_state.remove(
        session, [row for row, view in _rows(session) if view is None or view.reported < gone]
    )


def _rows(session: Session) -> list[tuple[str, LinkState | None]]:
    """Every process's row: its name and its view (None for a row that does not decode)."""
    s = platform_state_table.c
    rows: list[tuple[str, LinkState | None]] = []
    for name, value in session.execute(select(s.name, s.value).where(s.name.like(f"{PREFIX}%"))):
        try:
            rows.append((name, LinkState.decode(value)))
        except ValueError:
            rows.append((name, None))
    return rows


def current(session: Session) -> list[LinkState]:
    """Every process's fresh view."""
    oldest = utcnow() - timedelta(seconds=STALE_S)
    return [state for _, state in _rows(session) if state is not None and state.reported >= oldest]


def down(states: list[LinkState]) -> dict[str, LinkState]:
    """Per connection that no process has up: the view of the one down longest."""
    connections: dict[str, list[LinkState]] = {}
    for state in states:
        connections.setdefault(state.connection, []).append(state)
    return {
        name: min(views, key=lambda view: view.since)
        for name, views in connections.items()
        if not any(view.up for view in views)
    }


def describe(state: LinkState) -> str:
    return f"not connected since {state.since:{STAMP}}: {state.detail}"


# --- SMPP: the driver's loop reports its binds ----------------------------------------------


async def watch_links(connection: str, bound: Callable[[], tuple[bool, str]]) -> None:
    """Forever, on the driver's loop: report whether every bind is up (``bound`` says so, and
    why not)."""
    loop = asyncio.get_running_loop()
    down_since: datetime | None = None
    up_since = utcnow()
    while True:
        up, why = bound()
        now = utcnow()
        if up:
            if down_since is not None:
                up_since, down_since = now, None
            state = LinkState(connection, True, up_since, now)
        else:
            down_since = down_since or now
            late = (now - down_since).total_seconds() >= GRACE_S
            state = LinkState(connection, not late, down_since if late else up_since, now, why)
        try:
            await loop.run_in_executor(None, _store, state)
        except Exception as exc:  # the database is away: the next report tries again
            log.warning("carrier connectivity not recorded: %s", exc)
        await asyncio.sleep(REPORT_EVERY_S)


def _store(state: LinkState) -> None:
    with session_scope() as session:
        write(session, state)
        session.commit()


# --- HTTP: the carrier stage says what its hand-offs met ------------------------------------

_lock = threading.Lock()
_views: dict[str, tuple[bool, datetime, str]] = {}  # connection → up, since, why
_written: dict[str, tuple[float, tuple[bool, datetime, str]]] = {}  # when, what


def reached(connection: str, up: bool, why: str = "") -> None:
    """A hand-off reached the carrier (True) or could not connect (False, and why)."""
    with _lock:
        view = _views.get(connection)
        if view is None or view[0] != up:
            _views[connection] = (up, utcnow(), why)


def sync(session: Session) -> None:
    """Write this process's HTTP views that changed or are due for a refresh (caller commits)."""
    now = time.monotonic()
    with _lock:
        due = {}
        for name, view in _views.items():
            at, what = _written.get(name, (0.0, None))
            if what != view or now - at >= REPORT_EVERY_S:
                due[name] = view
                _written[name] = (now, view)
    for connection, (up, since, why) in due.items():
        write(session, LinkState(connection, up, since, utcnow(), why))
