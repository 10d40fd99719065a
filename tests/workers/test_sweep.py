"""The sweeper on a store of its own: idle, a pass costs two statements; anything open, and it
looks at everything as before."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from dispatcher.bench.platform import scratch_store
from dispatcher.intake.accounts import create_account
from schemas.db import get_engine, session_scope
from tests.processes import Account
from tests.workers.test_claims import make_due
from workers.stages import sweep


@pytest.fixture
def store() -> Iterator[Account]:
    """A fresh, migrated store this process points at (its own database and Redis prefix)."""
    with scratch_store():
        with session_scope() as session:
            account, token = create_account(session, "sweep")
        yield Account(account.sid, token, "+12025550123")


def statements_of_a_pass() -> tuple[int, sweep.Sweep]:
    executed: list[str] = []

    def count(*args: Any) -> None:
        executed.append(args[2])

    event.listen(get_engine(), "before_cursor_execute", count)
    try:
        with session_scope() as session:
            report = sweep.sweep(session)
    finally:
        event.remove(get_engine(), "before_cursor_execute", count)
    return len(executed), report


def test_an_idle_pass_costs_two_statements_and_open_work_gets_its_stage_woken(
    store: Account,
) -> None:
    # given a store with nothing open
    statements_of_a_pass()  # the first pass of a process also prunes old activity windows
    # when the sweeper passes
    idle, report = statements_of_a_pass()
    # then it checked, found nothing and did nothing else
    assert idle == 2
    assert report.woken == []
    # and once a message waits, due, in the carrier stage (its wake-up lost)
    [sid] = make_due(store, 1, "carrier")
    busy, report = statements_of_a_pass()
    # the pass looks at everything again, and wakes the stage
    assert busy > 10
    assert report.woken == ["carrier"]
    assert sid not in report.reclaimed
