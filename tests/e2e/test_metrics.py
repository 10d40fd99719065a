"""/metrics and ``mycpaas queues`` describe the running platform: backlog, statuses, latencies."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlmodel import Session

from schemas.db import make_engine
from schemas.models import callbacks_table
from tests.e2e.conftest import NO_MEDIA, Platform, launch
from tests.processes import random_number, stop

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(platform: Platform) -> Samples:
    response = httpx.get(f"{platform.api}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(platform: Platform, check: Callable[[Samples], bool], timeout_s: float = 20):
    """Scrapes until ``check`` holds (workers flush their counters every few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(platform)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.5)


def queues_command(platform: Platform) -> str:
    done = subprocess.run(["mycpaas", "queues"], env={**os.environ, **platform.env},
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return done.stdout


def stage_row(output: str, stage: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.startswith(f"{stage} "))


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform of these tests' own: the counters move only with what they send."""
    # no circuit breaker: the dead-letter test runs its retries back to back
    with launch(
        tmp_path_factory.mktemp("metrics"),
        workers=NO_MEDIA,
        MYCPAAS_CALLBACK_BREAKER_FAILURES="1000",
    ) as platform:
        yield platform


def test_backlog_shows_while_workers_are_stopped_and_drains(quiet: Platform) -> None:
    # given: the carrier worker is stopped (an SMS goes from intake straight to its stage)
    stop(quiet.procs.pop("carrier"))
    account = quiet.new_account()
    before = scrape(quiet)
    # when: 25 messages are accepted
    sids = [quiet.send(account, random_number(), f"m{n}")["sid"] for n in range(25)]
    time.sleep(1.0)
    # then: the carrier queue holds all of them, and its oldest has been waiting
    samples = scrape(quiet)
    assert value(samples, "mycpaas_queue_depth", stage="carrier", queue="carrier") == 25
    assert value(samples, "mycpaas_queue_oldest_age_seconds", stage="carrier",
                 queue="carrier") >= 1.0  # fmt: skip
    assert value(samples, "mycpaas_messages", status="queued") == 25
    row = stage_row(queues_command(quiet), "carrier")
    assert row[:3] == ["carrier", "carrier", "25"]

    # when: the worker starts again
    quiet.start_worker("carrier")
    done = quiet.wait_terminal(account, sids)

    # then: the backlog is gone, and the counters saw every message through
    def grew(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    assert {m["status"] for m in done.values()} == {"delivered"}
    samples = scrape_until(quiet, lambda s: grew(
        s, "mycpaas_message_latency_seconds_count", status="delivered") >= 25)  # fmt: skip
    assert value(samples, "mycpaas_queue_depth", stage="carrier", queue="carrier") == 0
    assert grew(samples, "mycpaas_messages", status="delivered") == 25
    assert grew(samples, "mycpaas_message_latency_seconds_count", status="delivered") == 25
    assert grew(samples, "mycpaas_message_latency_seconds_count", status="sent") == 25
    count = grew(samples, "mycpaas_stage_latency_seconds_count", stage="carrier")
    assert count == 25
    inf = grew(samples, "mycpaas_stage_latency_seconds_bucket", stage="carrier", le="+Inf")
    assert inf == count
    assert grew(samples, "mycpaas_stage_latency_seconds_count", stage="segment") == 0
    # the carrier stage's latency includes the wait while no worker ran
    assert grew(samples, "mycpaas_stage_latency_seconds_bucket", stage="carrier", le="1.0") == 0
    assert (
        grew(
            samples,
            "mycpaas_carrier_results_total",
            result="accepted",
            code="",
            connection="default",
        )
        == 25
    )
    assert grew(samples, "mycpaas_stage_processed_total", stage="carrier") == 25
    assert ("mycpaas_settle_rescues_total", frozenset()) in samples  # shown, and stays 0
    assert value(samples, "mycpaas_settle_rescues_total") == 0
    row = stage_row(queues_command(quiet), "carrier")
    assert row[2] == "0"
    assert float(row[6]) > 0  # the last minute's rate


def test_metrics_count_failures_throttle_waits_and_callbacks(quiet: Platform) -> None:
    # given
    before = scrape(quiet)
    account = quiet.new_account(sps=2)
    receiver = "http://127.0.0.1:9/unreachable"  # nothing listens: every attempt retries, then dead
    # when: one message the carrier rejects and three from a sender allowed 2 per second
    rejected = quiet.send(account, "+15005550004", "no")["sid"]
    throttled = [quiet.send(account, random_number(), f"t{n}")["sid"] for n in range(2)]
    called = quiet.send(account, random_number(), "cb", StatusCallback=receiver)["sid"]
    quiet.wait_terminal(account, [rejected, called, *throttled])

    # then
    def grew(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    owed = len(callbacks_of(quiet, called))  # one per status the message entered
    samples = scrape_until(quiet, lambda s: grew(
        s, "mycpaas_callback_attempts_total", outcome="dead") >= owed, timeout_s=60)  # fmt: skip
    assert (
        grew(
            samples,
            "mycpaas_carrier_results_total",
            result="rejected",
            code="30007",
            connection="default",
        )
        == 1
    )
    assert grew(samples, "mycpaas_message_latency_seconds_count", status="failed") == 1
    assert grew(samples, "mycpaas_throttle_wait_seconds_count") >= 1
    # each callback is tried 4 times (the platform's setting): 3 retries, then dead
    assert grew(samples, "mycpaas_callback_attempts_total", outcome="dead") == owed
    assert grew(samples, "mycpaas_callback_attempts_total", outcome="retry") == 3 * owed


def callbacks_of(platform: Platform, sid: str) -> list[Any]:
    engine = make_engine(platform.env["MYCPAAS_DATABASE_URL"])
    try:
        with Session(engine) as session:
            c = callbacks_table.c
            return list(session.execute(select(c.id).where(c.message_sid == sid)).all())
    finally:
        engine.dispose()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_queues_watch_refreshes_until_interrupted(quiet: Platform) -> None:
    # given
    # As from a terminal: Ctrl-C not ignored, even where the suite itself runs as a background
    # job of a shell without job control (which starts it, and all it spawns, ignoring SIGINT).
    watching = subprocess.Popen(["mycpaas", "queues", "--watch", "--interval", "0.5"],
                                env={**os.environ, **quiet.env}, stdout=subprocess.PIPE,
                                text=True, preexec_fn=_default_sigint)  # fmt: skip
    # when: it drew its table three times (not a fixed time: its imports alone can take
    # seconds on a busy machine, and a Ctrl-C during them is a KeyboardInterrupt), Ctrl-C
    assert watching.stdout is not None
    output = ""
    while output.count("stage ") < 3:
        line = watching.stdout.readline()
        assert line, f"it exited before drawing three tables: {output!r}"
        output += line
    watching.send_signal(signal.SIGINT)
    try:
        rest, _ = watching.communicate(timeout=10)
    finally:
        watching.kill()  # never left running for a later test's warnings
        watching.wait()
        watching.stdout.close()
    output += rest
    # then: it drew the table again and again, and left quietly
    assert watching.returncode == 0
    assert output.count("stage ") >= 3
    assert "Traceback" not in output
