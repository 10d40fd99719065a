"""Receipts that arrive as ``deliver_sm`` go into the same inbox as HTTP receipts.

Stored (committed) first; the driver answers ``deliver_sm_resp`` only after this returns.
Then the receipts stage is woken; a wake-up that cannot be published is the sweeper's to make
(it wakes the stage whenever receipts wait), so it never un-answers a stored receipt.
"""

import logging
from typing import Any

from schemas.db import session_scope
from workers.pipeline import wakeup
from workers.stages import receipts

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
