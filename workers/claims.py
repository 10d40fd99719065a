"""Claiming due work: a compare-and-set that many workers can run at once.

``UPDATE messages SET … FROM (SELECT sid, next_attempt_at … FOR UPDATE SKIP LOCKED LIMIT n)
RETURNING``: each due row goes to exactly one claimer; a claim that finds nothing returns an
empty list. Each claimed row carries ``due_at``, when it became due (before the claim set a
lease), for the stage's latency. (On SQLite, the embedded store, the single writer makes the
statement atomic by itself.)
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlmodel import Session

from schemas.models import messages_table

m = messages_table.c


def claim_due(
    session: Session, stage: str, *, now: datetime, limit: int, sets: dict[str, Any]
) -> list[Row[Any]]:
    """Take up to ``limit`` rows of ``stage`` that are due, setting the columns ``sets``."""
    due = (
        select(m.sid, m.next_attempt_at.label("due_at"))
        .where(m.stage == stage, m.next_attempt_at <= now)
        .order_by(m.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .subquery("due")
    )
    statement = (
        update(messages_table)
        .where(m.sid == due.c.sid, m.stage == stage)
        .values(**sets)
        .returning(*messages_table.c, due.c.due_at)
    )
    return list(session.execute(statement).all())
