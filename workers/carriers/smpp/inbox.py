"""Receipts that arrive as ``deliver_sm`` go into the same inbox as HTTP receipts, and the
messages handsets send (MO) into the same store as those an HTTP gateway posts.

Stored (committed) first; the driver answers ``deliver_sm_resp`` only after this returns.
Then the stage is woken; a wake-up that cannot be published is the sweeper's to make (it wakes
a stage whenever its rows wait), so it never un-answers a stored receipt or message.
"""

import logging
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from schemas.db import session_scope
from workers.pipeline import wakeup
from workers.stages import inbound, receipts

log = logging.getLogger(__name__)


def keep(rows: list[dict[str, Any]]) -> None:
    _kept(receipts.store, rows, "receipts")


def keep_inbound(parts: list[dict[str, Any]]) -> None:
    _kept(inbound.store, parts, "inbound")


def _kept(store: Callable[[Session, list[dict[str, Any]]], None], rows: list[dict[str, Any]],
          stage: str) -> None:  # fmt: skip
    with session_scope() as session:
        store(session, rows)
    try:
        wakeup.wake(stage)
    except Exception as exc:
        log.warning("smpp: %d rows of the %s stage stored; waking it failed (%s), the sweeper "
                    "will", len(rows), stage, exc)  # fmt: skip
