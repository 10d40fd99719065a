"""Statements that can only be fast through a partial index name the index's condition in their
own text. Bound as a parameter, the value is invisible to the generic plan Postgres settles on
once psycopg prepares a statement, and the plan scans the whole table: 0.6-0.7 s per callback claim
at three million callbacks (``mycpaas bench --spawn --stored 1000000`` found it)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from schemas.db import get_engine, session_scope
from workers import backlog
from workers.stages import callbacks, receipts


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL text of every statement executed meanwhile, as sent to the server."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("run", "condition"),
    [
        (lambda s: callbacks.claim(s, 10), "callbacks.state = 'pending'"),
        (callbacks.due, "callbacks.state = 'pending'"),
        (callbacks.release_lost, "callbacks.state = 'delivering'"),
        (receipts.settle_stranded, "messages.status = 'sent'"),
        (backlog.snapshot, "callbacks.state IN ('pending', 'delivering')"),
    ],
    ids=["callback claim", "callbacks due", "lost leases", "stranded sent", "backlog"],
)
def test_the_partial_index_condition_is_in_the_statement_text(
    database: str, run: Callable[[Any], object], condition: str
) -> None:
    with statements() as seen, session_scope() as session:
        run(session)
    assert any(condition in statement for statement in seen), seen
