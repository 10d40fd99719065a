"""One engine per process, one session per unit of work."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    String,
    any_,
    bindparam,
    create_engine,
    event,
    literal,
)  # fmt: skip
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session

from schemas.settings import get_settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable across crashes
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    size = get_settings().db_pool_size
    # No pre-ping: it costs a round trip per checkout. A connection the server dropped fails
    # its statement once (API: 503; tasks retry) and the pool replaces it.
    return create_engine(url, pool_size=size, max_overflow=size // 2, pool_recycle=1800)


def constant(value: str) -> ColumnElement[str]:
    """``value`` written into the statement's text, not bound as a parameter. For a condition
    a partial index is defined by (``state IN ('pending', 'delivering')``): the planner uses
    such an index only when it sees the value. Bound, it is a parameter of a prepared
    statement, and the generic plan Postgres settles on after a few executions cannot use the
    index: a scan of the whole table, per claim, at a million rows."""
    return literal(value, String, literal_execute=True)


def any_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values`` whose text is the same however many values: on Postgres
    ``column = ANY(%(array)s)``, one parameter. An ``IN`` list is rendered anew for each call
    (a fifth of a small batch's Python time) and each length is another statement to the
    server, parsed and planned again, never a prepared one. (For a column of plain values:
    text, numbers.)"""
    values = list(values)
    if get_engine().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


@lru_cache
def get_engine() -> Engine:
    # The tables' models are mapped now, once: a model made with ``model_construct`` (the
    # committer's messages, a worker's replies) reads its attributes through the mappers, and
    # a process that has run no ORM query yet would find them unconfigured.
    configure_mappers()
    return make_engine(get_settings().database_url)


def dispose_engine(*, close: bool = True) -> None:
    """Forget the process's engine; after a fork pass ``close=False`` (the parent owns them)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=close)
    get_engine.cache_clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session
