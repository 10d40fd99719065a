"""Rows of ``platform_state``: one value per name, each written by the process that owns it
(a worker's liveness, a connection's view, the carrier's refusal), in the caller's
transaction."""

from collections.abc import Collection

from sqlalchemy import delete, insert
from sqlmodel import Session

from schemas.models import platform_state_table

s = platform_state_table.c


def put(session: Session, name: str, value: str) -> None:
    """``name`` holds ``value`` from now on."""
    remove(session, [name])
    session.execute(insert(platform_state_table).values(name=name, value=value))


def remove(session: Session, names: Collection[str]) -> None:
    if names:
        session.execute(delete(platform_state_table).where(s.name.in_(list(names))))
