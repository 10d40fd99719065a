"""The whole platform as real processes: API, workers, beat, carrier simulator.

The session's platform sweeps every second and leases ``sending`` rows for 5 s so fault
tests finish quickly; fault tests that break a process start platforms of their own.
"""

import contextlib
import os
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from dispatcher.intake.accounts import add_number, create_account
from schemas.db import make_engine
from schemas.models import messages_table
from tests import services
from tests.conftest import BROKERS, RUN_DATABASE, admin, database_url
from tests.processes import Account, free_port, new_account, random_number, start, wait_http

TERMINAL = {"delivered", "failed"}
NO_MEDIA = ("segment", "carrier", "callbacks", "maintenance")  # a platform that sends no MMS
SMS_ONLY = ("segment", "carrier", "maintenance")  # no MMS, no status callbacks
STOP_TIMEOUT_S = 10  # as tests.processes.stop: a warm shutdown, else killed


@dataclass
class Platform:
    api: str
    sim: str
    env: dict[str, str]
    workdir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    sim_command: list[str] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))  # keep-alive

    def start_worker(
        self, queue: str, name: str | None = None, output: IO[bytes] | None = None,
        concurrency: int | None = None, **env: str,
    ) -> subprocess.Popen:  # fmt: skip
        name = name or queue
        command = ["mycpaas", "worker", "-Q", queue, "-n", f"{name}-{free_port()}@%h"]
        if concurrency is not None:
            command += ["-c", str(concurrency)]
        proc = start(command, {**self.env, **env}, output)
        self.procs[name] = proc
        return proc

    def new_account(self, sps: float = 1000.0) -> Account:
        """An account in this platform's database."""
        url = self.env.get("MYCPAAS_DATABASE_URL")
        if url is None:
            return new_account(sps=sps)
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                account, token = create_account(session, "test")
                number = add_number(session, account.sid, random_number(), sps)
                return Account(account.sid, token, number.phone_number)
        finally:
            engine.dispose()

    def column(self, sids: list[str], column: str) -> dict[str, Any]:
        """One column of these messages, read from the platform's database."""
        engine = make_engine(self.env.get("MYCPAAS_DATABASE_URL") or database_url(RUN_DATABASE))
        try:
            with Session(engine) as session:
                m = messages_table.c
                rows = session.execute(select(m.sid, m[column]).where(m.sid.in_(sids)))
                return {sid: value for sid, value in rows}
        finally:
            engine.dispose()

    def stages(self, sids: list[str]) -> Counter[str]:
        """How many of these messages each pipeline stage holds."""
        return Counter(self.column(sids, "stage").values())

    def stop_all(self) -> None:
        """Asks every process to stop at once, then waits for each: a worker's warm shutdown
        takes about a second, and they overlap."""
        running = [proc for proc in self.procs.values() if proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        self.http.close()

    def send(self, account: Account, to: str, body: str = "hello", **params: object) -> dict:
        response = self.http.post(
            f"{self.api}/v1/Accounts/{account.sid}/Messages",
            data={"To": to, "From": account.number, "Body": body, **params},
            auth=account.auth,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def fetch(self, account: Account, sid: str) -> dict:
        return self.http.get(
            f"{self.api}/v1/Accounts/{account.sid}/Messages/{sid}", auth=account.auth
        ).json()

    def wait_terminal(
        self, account: Account, sids: list[str], timeout_s: float = 30
    ) -> dict[str, dict]:
        """Wait until every message is delivered or failed; returns them (the API's view)."""
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = self.column(sids, "status")
            waiting = {sid: status for sid, status in statuses.items() if status not in TERMINAL}
            if not waiting and len(statuses) == len(sids):
                return {sid: self.fetch(account, sid) for sid in sids}
            if time.monotonic() > deadline:
                raise AssertionError(f"not terminal after {timeout_s} s: {waiting}")
            time.sleep(0.1)

    def counters(self, prefix: str = "") -> dict[str, int]:
        """How many times the simulator received each reference."""
        answer = self.http.get(f"{self.sim}/counters", params={"prefix": prefix}).json()
        return answer["submissions"]


@contextlib.contextmanager
def own_database() -> Iterator[str]:
    """A fresh, migrated database, so a platform's workers never drain another's rows."""
    name = f"{RUN_DATABASE}_{secrets.token_hex(3)}"
    url = database_url(name)
    admin(f'CREATE DATABASE "{name}"')
    try:
        subprocess.run(["mycpaas", "migrate"], check=True, capture_output=True,
                       env={**os.environ, "MYCPAAS_DATABASE_URL": url})  # fmt: skip
        yield url
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def launch(
    workdir: Path,
    *,
    latency_ms: float = 0,
    isolated: bool = True,
    workers: tuple[str, ...] = ("media", "segment", "carrier", "callbacks", "maintenance"),
    sim_args: tuple[str, ...] = (),
    **env: str,
) -> Iterator[Platform]:
    """API, simulator, one worker per queue in ``workers`` and beat; all stopped on exit.

    ``isolated`` gives the platform its own database and Redis prefix (broker queues too);
    ``sim_args`` are further options of ``mycpaas carrier-sim``.
    """
    with contextlib.ExitStack() as stack:
        if isolated:
            own = {"MYCPAAS_DATABASE_URL": stack.enter_context(own_database()),
                   "MYCPAAS_REDIS_PREFIX": f"mycpaas-test-{secrets.token_hex(4)}:"}  # fmt: skip
            env = {**own, **env}
        yield stack.enter_context(_processes(workdir, latency_ms, workers, env, sim_args))


@contextlib.contextmanager
def _processes(
    workdir: Path, latency_ms: float, workers: tuple[str, ...], env: dict[str, str],
    sim_args: tuple[str, ...] = (),
) -> Iterator[Platform]:  # fmt: skip
    api_port, sim_port = free_port(), free_port()
    platform = Platform(
        api=f"http://127.0.0.1:{api_port}",
        sim=f"http://127.0.0.1:{sim_port}",
        env={
            "MYCPAAS_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
            "MYCPAAS_CARRIER_URL": f"http://127.0.0.1:{sim_port}",
            "MYCPAAS_SWEEP_INTERVAL_S": "1",
            "MYCPAAS_SENDING_LEASE_S": "5",
            "MYCPAAS_CARRIER_TIMEOUT_S": "3",
            "MYCPAAS_CALLBACK_BACKOFF_BASE_S": "0.2",
            "MYCPAAS_CALLBACK_MAX_ATTEMPTS": "4",
            "MYCPAAS_CALLBACK_LEASE_S": "5",
            "MYCPAAS_CALLBACK_TIMEOUT_S": "3",
            "MYCPAAS_CALLBACK_BREAKER_OPEN_S": "2",
            "MYCPAAS_MEDIA_TOTAL_S": "2",
            "MYCPAAS_MEDIA_READ_TIMEOUT_S": "2",
            **env,
        },
        workdir=workdir,
    )
    try:
        platform.sim_command = ["mycpaas", "carrier-sim", "--port", str(sim_port), "--latency-ms",
                                str(latency_ms), "--receipt-delay-ms", "20", *sim_args]  # fmt: skip
        platform.procs["sim"] = start(platform.sim_command, platform.env)
        platform.procs["api"] = start(["mycpaas", "serve", "--port", str(api_port)], platform.env)
        for queue in workers:
            platform.start_worker(queue)
        platform.procs["beat"] = start(
            ["mycpaas", "beat", "--schedule-file", str(workdir / "beat-schedule")], platform.env
        )
        wait_http(f"{platform.sim}/healthz", proc=platform.procs["sim"])
        wait_http(f"{platform.api}/healthz", proc=platform.procs["api"])
        yield platform
    finally:
        platform.stop_all()


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this run's own, so no run or platform shares a queue.

    Skips the test when no RabbitMQ answers (an error under ``CI=true``)."""
    url = services.rabbitmq_url()
    vhost = f"mycpaas-test-{secrets.token_hex(4)}"
    rabbitmqctl = ["rabbitmqctl", "-q"]
    subprocess.run([*rabbitmqctl, "add_vhost", vhost], check=True, capture_output=True)
    try:
        subprocess.run([*rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True)  # fmt: skip
        yield f"{url}/{vhost}"
    finally:
        subprocess.run([*rabbitmqctl, "delete_vhost", vhost], check=False, capture_output=True)


_running: dict[str, tuple[contextlib.ExitStack, Platform]] = {}  # the session platform, by broker


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of the session's platform run on Redis; those marked ``both_brokers`` (where a
    message crosses the broker in a way of its own) on RabbitMQ as well. The parameter is
    session-wide, so pytest runs each broker's tests back to back."""
    if "platform" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_brokers") is not None
        metafunc.parametrize("platform", list(BROKERS if both else BROKERS[:1]), indirect=True,
                             scope="session")  # fmt: skip


@pytest.fixture
def platform(
    request: pytest.FixtureRequest, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Platform:
    """The session's platform on this test's broker: started by the first test that asks for
    it, stopped as soon as the next test does not (``pytest_runtest_teardown``), so it never
    works on this process's database while other tests run."""
    broker: str = request.param
    if broker not in _running:
        stop_session_platforms()
        with contextlib.ExitStack() as stack:
            env = {}
            if broker == "rabbitmq":
                env["MYCPAAS_BROKER_URL"] = stack.enter_context(rabbitmq_vhost())
            workdir = tmp_path_factory.mktemp(f"platform-{broker}")
            running = stack.enter_context(launch(workdir, isolated=False, **env))
            _running[broker] = (stack.pop_all(), running)
    return _running[broker][1]


def stop_session_platforms() -> None:
    while _running:
        stack, _ = _running.popitem()[1]
        stack.close()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    callspec = getattr(nextitem, "callspec", None)
    if callspec is None or callspec.params.get("platform") not in _running:
        stop_session_platforms()


def pytest_sessionfinish() -> None:
    stop_session_platforms()  # after Ctrl-C or a crash too
