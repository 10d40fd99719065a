"""No background loop dies silently: an exception nobody foresaw is injected into each loop, and
the loop is shown to log it with its traceback, count it and carry on.

Before, a password longer than SMPP's 8 characters raised ``ValueError`` inside the session's
connect loop, which caught only network and protocol errors: the session task ended, nothing
bound, nothing said why, and messages waited for ever.
"""

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from dispatcher.intake import committer as committer_module
from dispatcher.intake import publish
from dispatcher.intake.committer import Committer
from schemas.db import session_scope
from schemas.models import metric_counters_table
from tests.dispatcher.test_committer import committed, new_message
from tests.processes import Account
from tests.smpp_driver import (
    Inbox,
    accepted_ids,
    destination,
    eventually,
    opened_driver,
    submission,
)
from tests.smsc import Smsc
from workers import supervision
from workers.carriers.smpp import pdu
from workers.carriers.smpp.receipts import ReceiptStore
from workers.carriers.smpp.session import Link
from workers.metrics import BACKGROUND_ERRORS, encode_labels, recorder


class Boom(Exception):
    """What nobody foresaw."""


def fails_once(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, except that its first call raises :class:`Boom`."""
    calls = {"n": 0}

    def once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Boom("injected")
        return real(*args, **kwargs)

    return once


def errors_counted(loop: str) -> float:
    """``mycpaas_background_errors{loop}`` as /metrics will show it."""
    recorder.flush()
    t = metric_counters_table.c
    with session_scope() as session:
        value = session.execute(
            select(t.value).where(
                t.name == BACKGROUND_ERRORS, t.labels == encode_labels({"loop": loop})
            )
        ).scalar()
    return float(value or 0)


def logged_with_traceback(caplog: pytest.LogCaptureFixture, loop: str) -> bool:
    return any(
        loop in r.getMessage() and r.exc_info and r.exc_info[0] is Boom for r in caplog.records
    )


@pytest.fixture(autouse=True)
def short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "FIRST_PAUSE_S", 0.05)


def test_a_thread_loop_that_raises_is_logged_counted_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a loop whose first run raises and whose second finishes
    runs: list[float] = []

    def body() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise Boom("injected")

    before = errors_counted("test-loop")
    # when
    supervision.forever("test-loop", body)
    # then: it ran twice, a pause apart, and the failure is in the log and the metric
    assert len(runs) == 2
    assert runs[1] - runs[0] >= 0.05
    assert logged_with_traceback(caplog, "test-loop")
    assert errors_counted("test-loop") == before + 1


def test_a_loop_is_not_restarted_once_it_is_told_to_stop() -> None:
    stop = threading.Event()
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        stop.set()
        raise Boom("while stopping")

    supervision.forever("stopping-loop", body, stop)
    assert runs == [1]  # not started again once stopping


def test_an_async_loop_that_raises_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    runs = []

    async def body() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise Boom("injected")

    asyncio.run(supervision.forever_async("async-loop", body))
    assert len(runs) == 3
    assert logged_with_traceback(caplog, "async-loop")


def test_the_smpp_link_binds_after_its_connect_loop_met_an_unforeseen_error(
    smsc: Smsc, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given: encoding the bind raises once (as a 9-character password did)
    monkeypatch.setattr(pdu.BindBody, "encode", fails_once(pdu.BindBody.encode))
    # when the driver opens its session
    with opened_driver(smsc, inbox) as driver:
        # then: it bound on the next try, and said why the first failed
        assert driver.sender.binds == 1
        assert logged_with_traceback(caplog, "smpp bind_transceiver")
        accepted_ids(driver.submit([submission(destination())]))


def test_an_unforeseen_error_reading_a_pdu_drops_the_connection_and_binds_again(
    smsc: Smsc, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given: the first receipt handed to the store raises
    monkeypatch.setattr(ReceiptStore, "deliver", fails_once(ReceiptStore.deliver))
    with opened_driver(smsc, inbox) as driver:
        # when a message is sent and its receipt comes
        [carrier_id] = accepted_ids(driver.submit([submission(destination())]))
        # then: the connection was made again and the receipt, sent again, is stored
        eventually(lambda: carrier_id in inbox.by_id(), 15)
        assert driver.sender.binds == 2
        assert logged_with_traceback(caplog, "smpp bind_transceiver")


def test_an_unforeseen_error_in_the_keep_alive_makes_the_connection_again(
    smsc: Smsc, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = Link._request
    raised = threading.Event()

    async def request(self: Link, conn: Any, command: pdu.Command, *rest: Any) -> pdu.Pdu:
        if command == pdu.Command.ENQUIRE_LINK and not raised.is_set():
            raised.set()
            raise Boom("injected")
        return await real(self, conn, command, *rest)

    monkeypatch.setattr(Link, "_request", request)
    # when the link idles past its enquire_link interval
    with opened_driver(smsc, inbox, enquire_link_s=0.2) as driver:
        # then: the failed keep-alive was logged and the link bound again
        eventually(lambda: driver.sender.binds == 2 and driver.sender.bound, 10)
        assert logged_with_traceback(caplog, "enquire_link")


def test_the_receipt_store_goes_on_after_an_unforeseen_error(
    smsc: Smsc, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ReceiptStore, "_store", fails_once(ReceiptStore._store))
    with opened_driver(smsc, inbox) as driver:
        ids = accepted_ids(driver.submit([submission(destination()) for _ in range(3)]))
        # then: the SMSC sent the unanswered receipts again and the store took them
        eventually(lambda: set(ids) <= set(inbox.by_id()), 15)
        assert logged_with_traceback(caplog, "smpp receipts")


class _FlakyQueue:
    """The committer's queue, whose first ``get`` raises."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.get = fails_once(real.get)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_the_committer_commits_after_an_unforeseen_error(
    account: Account, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = SimpleNamespace(SimpleQueue=lambda: _FlakyQueue(queue.SimpleQueue()), Empty=queue.Empty)
    monkeypatch.setattr(committer_module, "queue", flaky)
    committer = Committer()
    message = new_message(account)
    committer.commit(message)
    assert committed([message.sid]) == {message.sid}
    assert logged_with_traceback(caplog, "committer")


def test_the_publisher_publishes_after_an_unforeseen_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    woken: list[str] = []
    monkeypatch.setattr(publish, "wake", fails_once(lambda stage, sid=None: woken.append(stage)))
    monkeypatch.setattr(publish, "_publisher", None)
    publish.wake_soon("segment")  # its wake-up meets the error
    eventually(lambda: logged_with_traceback(caplog, "wake-ups"), 5)
    publish.wake_soon("carrier")
    eventually(lambda: woken == ["carrier"], 5)
