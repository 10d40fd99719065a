"""Scheduled messages through real processes: released by the sweeper at their SendAt (never
earlier, within one sweep interval), whatever worker restarted in between."""

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from schemas.db import make_engine
from schemas.models import message_events_table
from tests.e2e.conftest import SMS_ONLY, Platform, launch
from tests.processes import random_number

SWEEP_INTERVAL_S = 1.0  # the test platform's (see tests/e2e/conftest.py)
DISPATCH_SLACK_S = 1.0  # beat's tick to the worker's sweep, on a loaded two-core machine


def events(platform: Platform, sid: str) -> dict[str, datetime]:
    """When the message entered each status, from the record."""
    engine = make_engine(platform.env["MYCPAAS_DATABASE_URL"])
    try:
        with Session(engine) as session:
            e = message_events_table.c
            rows = session.execute(
                select(e.status, e.date_created).where(e.message_sid == sid)
            ).all()
            return {status: at for status, at in rows}
    finally:
        engine.dispose()


def test_scheduled_message_is_released_on_time_across_a_worker_restart(tmp_path: Path) -> None:
    with launch(tmp_path, workers=SMS_ONLY, MYCPAAS_SCHEDULE_MIN_AHEAD_S="1") as platform:
        account = platform.new_account()
        send_at = (datetime.now(UTC) + timedelta(seconds=9)).replace(microsecond=0)
        sid = platform.send(
            account, random_number(), "at nine", ScheduleType="fixed", SendAt=send_at.isoformat()
        )["sid"]
        # when: the sweeper's worker dies outright and another takes its place
        old = platform.procs["maintenance"]
        os.killpg(old.pid, signal.SIGKILL)
        old.wait()
        platform.start_worker("maintenance", "maintenance-2")
        # then: scheduled until its time, then sent and delivered
        while datetime.now(UTC) < send_at - timedelta(seconds=0.3):
            assert platform.column([sid], "status")[sid] == "scheduled"
            time.sleep(0.1)
        done = platform.wait_terminal(account, [sid], timeout_s=30)
        entered = events(platform, sid)
        counts = platform.counters(sid)
    assert done[sid]["status"] == "delivered"
    assert counts == {f"{sid}-1": 1}
    late_s = (entered["queued"] - send_at).total_seconds()
    print(f"released {late_s:.3f} s after SendAt")
    assert 0 <= late_s <= SWEEP_INTERVAL_S + DISPATCH_SLACK_S
