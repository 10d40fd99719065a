"""Claiming due work: a compare-and-set that many workers can run at once.

``WITH due AS MATERIALIZED (SELECT sid, next_attempt_at … FOR UPDATE SKIP LOCKED LIMIT n)
UPDATE messages SET … FROM due … RETURNING``: each due row goes to exactly one claimer; a claim
that finds nothing returns an empty list. Each claimed row carries ``due_at``, when it became
due (before the claim set a lease), for the stage's latency.

SQLite, the embedded store, cannot return a joined column; there the due rows are read first
and the update claims only those still in the stage (its single writer makes that safe).
"""

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Row,
    Table,
    bindparam,
    case,
    literal,
    select,
    type_coerce,
    update,
)
from sqlmodel import Session

from schemas.db import kept
from schemas.models import messages_table
from schemas.types import UTCDateTime

m = messages_table.c


def matching(values: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """A message row's conditions from column values (a lease, as ``move``'s ``only_if``)."""
    return [m[name] == value for name, value in values.items()]


def claim_due(
    session: Session, stage: str, *, now: datetime, limit: int, sets: dict[str, Any]
) -> list[Row[Any]]:
    """Take up to ``limit`` messages of ``stage`` that are due, setting the columns ``sets``."""
    return claim_rows(
        session, messages_table, key="messages", due=m.next_attempt_at,
        where=lambda: [m.stage == bindparam("w_stage"), m.next_attempt_at <= bindparam("w_now")],
        still=lambda: m.stage == bindparam("w_stage"), limit=limit, sets=sets,
        params={"w_stage": stage, "w_now": now},
    )  # fmt: skip


def claim_rows(
    session: Session, table: Table, *, key: Hashable, due: ColumnElement[Any],
    where: Callable[[], list[ColumnElement[bool]]], still: Callable[[], ColumnElement[bool]],
    limit: int, sets: dict[str, Any], params: dict[str, Any],
    extra: Callable[[], Sequence[ColumnElement[Any]]] = tuple,
) -> list[Row[Any]]:  # fmt: skip
    """Take up to ``limit`` rows of ``table`` matching ``where``, the longest due first, and
    set ``sets`` on those that still match ``still``; each row comes with ``due_at`` (and the
    labelled expressions ``extra`` builds, read as the claim writes).

    ``where`` and ``still`` build conditions whose changing values are bound parameters, given
    in ``params``; the statement is built once per ``key``, ``limit`` and columns set."""
    primary = table.primary_key.columns.values()[0]

    def candidates() -> Any:
        return (
            select(primary, due.label("due_at"))
            .where(*where())
            .order_by(due, table.c.date_created)
            .limit(limit)
        )

    values = {f"v_{name}": value for name, value in sets.items()}
    if session.get_bind().dialect.name == "sqlite":
        found = session.execute(candidates(), params)
        return _oldest_first(
            _claim_on_sqlite(session, table, primary, found, still(), sets, params, extra())
        )

    def build() -> Any:
        # A CTE runs once. A subquery in FROM may be rescanned per row of a nested loop, and
        # each rescan of ``LIMIT n … SKIP LOCKED`` may pick other rows: a claim would exceed
        # its limit.
        locked = (
            candidates().with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        )
        return (
            update(table)
            .where(primary == locked.c[primary.name], still())
            .values({name: bindparam(f"v_{name}") for name in sets})
            .returning(*table.c, locked.c.due_at, *extra())
        )

    statement = kept(("claim", table.name, key, limit, tuple(sets)), build)
    return _oldest_first(session.execute(statement, {**params, **values}).all())


def _oldest_first(rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """RETURNING has no order; a stage works its batch first due, first served, and among rows
    due at once (a batch handed on together) first accepted: the throttle gives a sender's
    earlier message the earlier slot."""
    return sorted(rows, key=lambda row: (row.due_at, row.date_created, row[0]))


def _claim_on_sqlite(
    session: Session, table: Table, key: Column[Any], candidates: Iterable[Any],
    still: ColumnElement[bool], sets: dict[str, Any], params: dict[str, Any],
    extra: Sequence[ColumnElement[Any]] = (),
) -> list[Row[Any]]:  # fmt: skip
    found = {row_key: due_at for row_key, due_at in candidates}
    if not found:
        return []
    due_at = case({row_key: literal(at, UTCDateTime) for row_key, at in found.items()}, value=key)
    statement = (
        update(table)
        .where(key.in_(found), still)
        .values(**sets)
        .returning(*table.c, type_coerce(due_at, UTCDateTime).label("due_at"), *extra)
    )
    return list(session.execute(statement, params).all())
