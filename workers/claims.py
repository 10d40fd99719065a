"""Claiming due work: a compare-and-set that many workers can run at once.

``WITH due AS MATERIALIZED (SELECT sid, next_attempt_at … FOR UPDATE SKIP LOCKED LIMIT n)
UPDATE messages SET … FROM due … RETURNING``: each due row goes to exactly one claimer; a claim
that finds nothing returns an empty list. Each claimed row carries ``due_at``, when it became
due (before the claim set a lease), for the stage's latency.

SQLite, the embedded store, cannot return a joined column; there the due rows are read first
and the update claims only those still in the stage (its single writer makes that safe).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, literal, select, type_coerce, update
from sqlmodel import Session

from schemas.models import messages_table
from schemas.types import UTCDateTime

m = messages_table.c


def claim_due(
    session: Session, stage: str, *, now: datetime, limit: int, sets: dict[str, Any]
) -> list[Row[Any]]:
    """Take up to ``limit`` rows of ``stage`` that are due, setting the columns ``sets``."""
    due = (
        select(m.sid, m.next_attempt_at.label("due_at"))
        .where(m.stage == stage, m.next_attempt_at <= now)
        .order_by(m.next_attempt_at, m.date_created)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "sqlite":
        return _oldest_first(_claim_on_sqlite(session, stage, due, sets))
    # A CTE runs once. A subquery in FROM may be rescanned per row of a nested loop, and each
    # rescan of ``LIMIT n … SKIP LOCKED`` may pick other rows: a claim would exceed its limit.
    locked = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
    statement = (
        update(messages_table)
        .where(m.sid == locked.c.sid, m.stage == stage)
        .values(**sets)
        .returning(*messages_table.c, locked.c.due_at)
    )
    return _oldest_first(session.execute(statement).all())


def _oldest_first(rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """RETURNING has no order; a stage works its batch first due, first served, and among rows
    due at once (a batch handed on together) first accepted: the throttle gives a sender's
    earlier message the earlier slot."""
    return sorted(rows, key=lambda row: (row.due_at, row.date_created, row.sid))


def _claim_on_sqlite(
    session: Session, stage: str, due: Any, sets: dict[str, Any]
) -> list[Row[Any]]:
    found = {sid: due_at for sid, due_at in session.execute(due)}
    if not found:
        return []
    due_at = case({sid: literal(at, UTCDateTime) for sid, at in found.items()}, value=m.sid)
    statement = (
        update(messages_table)
        .where(m.sid.in_(found), m.stage == stage)
        .values(**sets)
        .returning(*messages_table.c, type_coerce(due_at, UTCDateTime).label("due_at"))
    )
    return list(session.execute(statement).all())
