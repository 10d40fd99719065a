"""One engine per process, one session per unit of work."""

import atexit
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

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

T = TypeVar("T")
_kept: dict[tuple[str, Hashable], Any] = {}


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


def any_bound(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """:func:`any_of` for a statement built once (:func:`kept`): ``column`` in the list
    given as the parameter ``name`` when it is executed."""
    if get_engine().dialect.name != "postgresql":
        return column.in_(bindparam(name, expanding=True))
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


def kept(key: Hashable, build: Callable[[], T]) -> T:
    """The statement ``build`` makes, built once per ``key`` (and store dialect) and kept;
    what changes between executions is bound as parameters. Building a statement and its
    cache key costs a worker more Python than executing it: a status change's UPDATE took
    620 µs of CPU built each time, 220 µs built once (a small batch pays that per statement)."""
    full = (get_engine().dialect.name, key)
    found = _kept.get(full)
    if found is None:
        found = _kept.setdefault(full, build())
    return found


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process's engine, made by the first caller. Made under a lock: two threads asking
    first at once (a driver's report and a request) made two, and the pool of the one dropped
    was left to the garbage collector with its connections open."""
    global _engine
    engine = _engine
    if engine is not None:
        return engine
    with _engine_lock:
        if _engine is None:
            # The tables' models are mapped now, once: a model made with ``model_construct``
            # (the committer's messages, a worker's replies) reads its attributes through the
            # mappers, and a process that has run no ORM query yet would find them unconfigured.
            configure_mappers()
            _engine = make_engine(get_settings().database_url)
        return _engine


def dispose_engine(*, close: bool = True) -> None:
    """Forget the process's engine; after a fork pass ``close=False`` (the parent owns them)."""
    global _engine
    with _engine_lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.dispose(close=close)


# Its connections closed before the interpreter takes modules apart: left to the garbage
# collector then, each printed a traceback on the way out (a CLI's one-line error got five).
atexit.register(dispose_engine)


@contextmanager
def session_scope() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session
