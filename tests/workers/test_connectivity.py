"""Whether a carrier connection is up, as /readyz, /metrics and ``mycpaas queues`` say it.

Before, a carrier worker whose SMPP session never bound (a password SMPP cannot carry) left
``/readyz`` green and ``mycpaas queues`` silent while every message waited.
"""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete

from dispatcher.api.app import carrier_ready
from dispatcher.api.metrics import exposition
from dispatcher.cli.queues import render
from schemas.db import session_scope
from schemas.models import platform_state_table
from schemas.types import utcnow
from tests.processes import free_port
from tests.smpp_driver import Inbox, destination, eventually, opened_driver, submission
from tests.smsc import Smsc, smsc_process
from workers.carriers import connectivity
from workers.carriers.base import Deferred
from workers.carriers.factory import make_driver
from workers.stages import carrier


@pytest.fixture(autouse=True)
def fast_reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(connectivity, "REPORT_EVERY_S", 0.1)
    monkeypatch.setattr(connectivity, "GRACE_S", 0.5)
    yield
    with session_scope() as session:  # the next test starts with no view of any process
        c = platform_state_table.c
        session.execute(delete(platform_state_table).where(c.name.like(f"{connectivity.PREFIX}%")))
        session.commit()


def views() -> list[connectivity.LinkState]:
    with session_scope() as session:
        return connectivity.current(session)


def metrics() -> str:
    with session_scope() as session:
        return exposition(session).decode()


@pytest.mark.e2e
def test_a_bind_refused_for_good_says_so_everywhere(inbox: Inbox) -> None:
    # given an SMSC that wants another password than the driver's
    with smsc_process("--smpp-password", "secret") as strict, \
            opened_driver(strict, inbox, password="wrong", timeout_s=1.0, wait_bound=False):  # fmt: skip
        # when it has been down past the grace
        eventually(lambda: any(not view.up for view in views()), 10)
        # then: /readyz, /metrics and mycpaas queues name it, and why
        assert carrier_ready().startswith("default not connected since ")
        assert "ESME_RINVPASWD" in carrier_ready()
        assert 'mycpaas_carrier_connected{connection="default"} 0.0' in metrics()
        assert "carrier: default not connected since" in render()


def test_a_bound_link_is_up_and_a_short_drop_is_no_alarm(
    smsc: Smsc, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a grace longer than the first reconnect (0.25-0.75 s), as in production (5 s)
    monkeypatch.setattr(connectivity, "GRACE_S", 3.0)
    with opened_driver(smsc, inbox) as driver:
        eventually(lambda: any(view.up for view in views()), 5)
        assert carrier_ready() == "ok"
        assert 'mycpaas_carrier_connected{connection="default"} 1.0' in metrics()
        assert "carrier: default up" in render()
        # when the SMSC drops the connection and it binds again within the grace
        smsc.post("/smpp/drop")
        seen: list[bool] = []
        eventually(lambda: seen.extend(v.up for v in views()) or (
            driver.sender.binds == 2 and driver.sender.bound), 5)  # fmt: skip
        # then: no report called it down meanwhile
        assert seen
        assert all(seen)


def test_a_process_that_stopped_reporting_drops_out() -> None:
    # given a view reported long ago (its process was killed)
    old = utcnow() - timedelta(seconds=connectivity.STALE_S + 1)
    with session_scope() as session:
        connectivity.write(session, connectivity.LinkState("default", False, old, old, "gone"))
        session.commit()
    # then it counts for nothing
    assert views() == []
    assert carrier_ready() == "ok"


def test_an_http_carrier_that_cannot_be_reached_is_down_until_it_answers(
    simulator_url: str,
) -> None:
    # given the HTTP carrier at a port where nothing listens
    dead = make_driver("simulator", f"http://127.0.0.1:{free_port()}", 1.0)
    try:
        # when a hand-off is tried
        answers = carrier._hand_over(dead, [submission(destination())], "default")
        with session_scope() as session:
            connectivity.sync(session)
            session.commit()
        # then: the segment waits, and the carrier is down, with the reason
        assert isinstance(answers[0], Deferred)
        [view] = views()
        assert (view.connection, view.up) == ("default", False)
        assert "ConnectError" in view.detail
        assert carrier_ready().startswith("default not connected since ")
        # when the next hand-off reaches a carrier that answers
        live = make_driver("simulator", simulator_url, 5.0)
        try:
            carrier._hand_over(live, [submission(destination())], "default")
        finally:
            live.close()
        with session_scope() as session:
            connectivity.sync(session)
            session.commit()
        # then it is up again
        assert [view.up for view in views()] == [True]
        assert carrier_ready() == "ok"
    finally:
        dead.close()
