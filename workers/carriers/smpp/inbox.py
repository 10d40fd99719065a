"""Receipts that arrive as ``deliver_sm`` go into the same inbox as HTTP receipts, and the
messages handsets send (MO) into the same store as those an HTTP gateway posts.

Stored (committed) first; the driver answers ``deliver_sm_resp`` only after this returns.
Then the stage is woken; a wake-up that cannot be published is the sweeper's to make (it wakes
a stage whenever its rows wait), so it never un-answers a stored receipt or message.
"""

import logging
from typing import Any

from schemas.db import session_scope
from workers.pipeline import wakeup
from workers.stages import inbound, receipts

log = logging.getLogger(__name__)


def keep(rows: list[dict[str, Any]]) -> None:
    with session_scope() as session:
        receipts.store(session, rows)
    try:
        wakeup.wake("receipts")
    except Exception as exc:
        log.warning(
            "smpp: %d receipts stored; waking their stage failed (%s), the sweeper will",
            len(rows),
            exc,
        )


def keep_inbound(parts: list[dict[str, Any]]) -> None:
    with session_scope() as session:
        inbound.store(session, parts)
    try:
        wakeup.wake("inbound")
    except Exception as exc:
        log.warning("smpp: %d inbound parts stored; waking their stage failed (%s), the sweeper "
                    "will", len(parts), exc)  # fmt: skip
