"""Fault tests: a worker killed mid-batch, Redis restarted or flushed mid-run, a broker down at
intake, a throttle shared by two workers. Every message still ends delivered or failed, and the
simulator's counters prove no segment was handed over twice."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import SMS_ONLY, Platform, launch, rabbitmq_vhost
from tests.processes import Account, free_port, new_account, random_number, start_api
from tests.services import redis_server_command
from workers.app import BROKER_WAIT_S


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server of the test's own on a free loopback port (never the shared one), from
    the binary the session's throwaway Redis would use."""
    port = free_port()
    proc = subprocess.Popen(redis_server_command(port, workdir), stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                break
        if time.monotonic() > deadline:
            raise TimeoutError("private redis did not start")
        time.sleep(0.05)
    try:
        yield url, proc
    finally:
        proc.kill()
        proc.wait()


def restart_redis(
    url: str, proc: subprocess.Popen, workdir: Path, down_s: float
) -> subprocess.Popen:
    proc.kill()  # like a crash: with AOF off, every queued message is gone
    proc.wait()
    time.sleep(down_s)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return subprocess.Popen(redis_server_command(port, workdir), stdout=subprocess.DEVNULL)


def assert_handed_over_once(counts: dict[str, int], sids: list[str]) -> None:
    for sid in sids:
        assert counts.get(f"{sid}-1") == 1, (sid, counts.get(f"{sid}-1"))


def test_kill_9_of_a_carrier_worker_mid_batch(database: str, tmp_path: Path) -> None:
    # given: a carrier that takes 1.5 s to answer, so the kill lands mid-request
    with launch(tmp_path, latency_ms=1500, workers=("segment", "maintenance")) as platform:
        account = platform.new_account()
        victim = platform.start_worker("carrier", "victim")
        sids = [platform.send(account, random_number(), f"m{i}")["sid"] for i in range(30)]
        deadline = time.monotonic() + 20
        while not platform.counters("") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert platform.counters(""), "the carrier never saw a submission"
        # when
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        platform.start_worker("carrier", "survivor")
        done = platform.wait_terminal(account, sids, timeout_s=60)
        counts = platform.counters("")
    # then
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert_handed_over_once(counts, sids)


def test_warm_shutdown_finishes_the_batch_in_hand_and_hands_on_the_rest(
    database: str, tmp_path: Path
) -> None:
    # given: 300 messages waiting for the carrier stage; the carrier answers a batch in 1 s
    with launch(tmp_path, latency_ms=1000, workers=("segment", "maintenance")) as platform:
        account = platform.new_account()
        sids = [platform.send(account, random_number(), f"m{i}")["sid"] for i in range(300)]
        wait_for(lambda: platform.stages(sids)["carrier"] == len(sids))
        leaving = platform.start_worker("carrier", "leaving", concurrency=1)
        wait_for(lambda: bool(platform.counters("")))  # its first batch is at the carrier
        # when: it is asked to stop (SIGTERM: Celery's warm shutdown)
        asked = time.monotonic()
        os.killpg(leaving.pid, signal.SIGTERM)
        leaving.wait(30)
        took_s = time.monotonic() - asked
        # then: it finished and recorded the batch in hand, and left the rest due, unclaimed
        stages = platform.stages(sids)
        assert leaving.returncode == 0
        assert took_s < 5, f"shutdown took {took_s:.1f} s: it kept draining"
        assert stages["sending"] == 0, stages
        assert 0 < stages["carrier"] < len(sids), stages
        # when: another worker takes over
        platform.start_worker("carrier", "successor")
        done = platform.wait_terminal(account, sids, timeout_s=90)
        counts = platform.counters("")
    # then
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert_handed_over_once(counts, sids)


# On RabbitMQ an idle worker's event loop sleeps until its next timer, up to 10 s: the signal
# itself must wake it. On Redis its stop waits for the queue read in flight (BROKER_WAIT_S).
@pytest.mark.parametrize(
    ("broker", "within_s"), [("rabbitmq", 2.5), ("redis", BROKER_WAIT_S + 1.5)]
)
def test_an_idle_worker_stops_promptly_on_sigterm(
    broker: str, within_s: float, database: str, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        env = {}
        if broker == "rabbitmq":
            env["MYCPAAS_BROKER_URL"] = stack.enter_context(rabbitmq_vhost())
        platform = stack.enter_context(launch(tmp_path, workers=(), **env))
        log = tmp_path / "worker.log"
        with log.open("wb") as output:
            worker = platform.start_worker("segment", output=output, MYCPAAS_LOG_LEVEL="INFO")
            wait_for(lambda: b"ready" in log.read_bytes())
            time.sleep(1.5)  # past the start's own wake-ups: the loop is asleep
            asked = time.monotonic()
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        assert worker.returncode == 0
        assert time.monotonic() - asked < within_s


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["restart", "flush"])
def test_redis_lost_mid_run(database: str, tmp_path: Path, fault: str) -> None:
    with private_redis(tmp_path) as (url, redis_proc):
        env = {"MYCPAAS_BROKER_URL": url, "MYCPAAS_REDIS_URL": url}
        with launch(tmp_path, latency_ms=20, workers=SMS_ONLY, **env) as platform:
            account = platform.new_account()
            sids = [platform.send(account, random_number(), f"a{i}")["sid"] for i in range(40)]
            # when: Redis goes away (or loses everything) while work is in flight
            if fault == "restart":
                redis_proc = restart_redis(url, redis_proc, tmp_path, down_s=1.0)
            else:
                redis.Redis.from_url(url).flushall()
            sids += [platform.send(account, random_number(), f"b{i}")["sid"] for i in range(40)]
            done = platform.wait_terminal(account, sids, timeout_s=90)
            counts = platform.counters("")
            # then: the workers survived it (the reason celery is pinned to 5.6.3)
            workers = {name: proc.poll() for name, proc in platform.procs.items()}
        redis_proc.kill()
        redis_proc.wait()
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert_handed_over_once(counts, sids)
    assert workers == dict.fromkeys(workers), f"processes exited: {workers}"


@pytest.mark.both_brokers
def test_broker_down_at_intake_is_delivered_by_the_sweeper(
    platform: Platform, account: Account
) -> None:
    # given: an API whose broker is gone, writing to the platform's database
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with start_api(free_port(), env={**platform.env, "MYCPAAS_BROKER_URL": dead,
                                     "MYCPAAS_REDIS_URL": dead}) as url:  # fmt: skip
        sids = [
            httpx.post(
                f"{url}/v1/Accounts/{account.sid}/Messages",
                data={"To": random_number(), "From": account.number, "Body": "later"},
                auth=account.auth,
            ).json()["sid"]
            for _ in range(5)
        ]
    # when the platform's sweeper finds them
    done = platform.wait_terminal(account, sids, timeout_s=30)
    # then
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert_handed_over_once(platform.counters(""), sids)


@pytest.mark.both_brokers
def test_throttle_is_shared_by_two_carrier_workers(platform: Platform) -> None:
    # given: a sender allowed 2 segments per second, and a second carrier worker
    account = new_account(sps=2)
    second = platform.start_worker("carrier", "carrier-2")
    try:
        # when
        sids = [platform.send(account, random_number(), f"t{i}")["sid"] for i in range(8)]
        done = platform.wait_terminal(account, sids, timeout_s=30)
    finally:
        second.terminate()
        second.wait(10)
    # then: after a burst of 2, one every 0.5 s
    sent = sorted(datetime.fromisoformat(done[sid]["date_sent"]) for sid in sids)
    offsets = [(moment - sent[0]).total_seconds() for moment in sent]
    for index, offset in enumerate(offsets[2:], start=2):
        assert offset >= (index - 1) * 0.5 - 0.1, offsets
    assert {message["status"] for message in done.values()} == {"delivered"}
