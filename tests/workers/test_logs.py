"""Logging set up for a worker or API process: the pipeline's lines, not a line per request."""

import logging
from collections.abc import Iterator

import pytest

from schemas.settings import get_settings
from workers.logs import configure_logging


@pytest.fixture
def root_kept() -> Iterator[None]:
    """Put back what configure_logging changes (pytest's own handlers included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.usefixtures("root_kept")
def test_http_clients_say_nothing_per_request_at_info_but_still_warn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYCPAAS_LOG_LEVEL", "INFO")  # the default; the tests run at WARNING
    get_settings.cache_clear()
    configure_logging()
    get_settings.cache_clear()
    assert logging.getLogger("workers.stages.carrier").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)


def test_a_batch_that_moves_several_messages_logs_one_line_naming_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sqlalchemy import update

    from dispatcher.intake.create import create_message
    from schemas.db import session_scope
    from schemas.models import messages_table
    from schemas.status import MessageStatus
    from tests.processes import new_account, random_number
    from workers.pipeline.transitions import move

    account = new_account()
    sids = [create_message(account.sid, {"To": [random_number()], "From": [account.number],
                                         "Body": ["x"]}, None).sid for _ in range(3)]  # fmt: skip
    with session_scope() as session:
        # out of the pipeline's way: no worker of this test claims them
        session.execute(update(messages_table).where(messages_table.c.sid.in_(sids))
                        .values(stage="done", next_attempt_at=None))  # fmt: skip
        with caplog.at_level(logging.INFO, logger="workers.pipeline.transitions"):
            move(session, sids, MessageStatus.SENDING)
            move(session, sids[:1], MessageStatus.SENT)
        session.commit()
    batch, single = caplog.records
    assert sorted(batch.__dict__["sids"]) == sorted(sids)
    assert batch.__dict__["status"] == "sending"
    assert all(sid in batch.getMessage() for sid in sids)
    assert single.__dict__["sid"] == sids[0]
    assert single.getMessage() == f"{sids[0]} is sent"
