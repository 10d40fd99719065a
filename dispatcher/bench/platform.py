"""The platform ``mycpaas bench --spawn`` runs on: a scratch store of its own, and the API,
simulator, workers and beat (and the callback sink) as child processes on loopback."""

import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click
import httpx
import psycopg
import redis
from sqlalchemy.engine import URL, make_url

from schemas.db import dispose_engine
from schemas.migrate import upgrade
from schemas.settings import get_settings

STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Spawned:
    api: str
    start_carriers: Callable[[], None] | None  # None: they run from the start
    sessions: dict[str, int]  # part name → session id, for CPU time


@contextlib.contextmanager
def scratch_store() -> Iterator[None]:
    """Point this process (and what it spawns) at a fresh, migrated store of its own: a
    database created beside the configured Postgres, or a SQLite file; removed on exit."""
    settings = get_settings()
    suffix = f"{os.getpid()}_{random.randrange(16**6):06x}"
    url = make_url(settings.database_url)
    _check_broker(settings.broker_url, settings.redis_url)
    with contextlib.ExitStack() as cleanup:
        if url.get_backend_name() == "postgresql":
            name = f"mycpaas_bench_{suffix}"
            admin = libpq_url(url)
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.Error as exc:
                raise click.ClickException(
                    f"cannot create a scratch database beside {url.render_as_string()}: "
                    f"{str(exc).strip()}"
                ) from exc
            cleanup.callback(_drop_database, admin, name)
            store = url.set(database=name).render_as_string(hide_password=False)
        else:
            directory = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mycpaas-bench-"))
            store = f"sqlite:///{directory}/bench.db"
        scratch = {
            "MYCPAAS_DATABASE_URL": store,
            "MYCPAAS_REDIS_PREFIX": f"{settings.redis_prefix}bench-{suffix}:",
            "MYCPAAS_SECRET_KEY": secrets.token_hex(16),  # a store of its own, a key of its own
        }
        cleanup.callback(_restore_environment, {key: os.environ.get(key) for key in scratch})
        os.environ.update(scratch)
        get_settings.cache_clear()
        dispose_engine()
        upgrade(store)
        yield


def libpq_url(url: URL) -> str:
    """``url`` as psycopg takes it: SQLAlchemy's driver name dropped, the password kept."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_store() -> str | None:
    """The store this process points at, as psycopg takes it; None when it is SQLite."""
    url = make_url(get_settings().database_url)
    return libpq_url(url) if url.get_backend_name() == "postgresql" else None


def _restore_environment(saved: dict[str, str | None]) -> None:
    dispose_engine()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


def _drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_broker(broker_url: str, redis_url: str) -> None:
    """One clear line, not a traceback from the first worker, when Redis is not there."""
    for setting, url in (("MYCPAAS_BROKER_URL", broker_url), ("MYCPAAS_REDIS_URL", redis_url)):
        if not url.startswith(("redis://", "rediss://")):
            continue
        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            raise click.ClickException(
                f"mycpaas bench --spawn needs Redis at {url} ({exc}); start it or set {setting}"
            ) from exc


@contextlib.contextmanager
def spawned_platform(
    port: int,
    sim_port: int,
    latency_ms: float,
    carriers: int,
    carrier: str = "simulator",
    backlog: bool = False,
    carrier_threads: int | None = None,
) -> Iterator[Spawned]:
    """The whole platform as child processes on loopback, for one bench run; ``carrier``
    "smpp" has the workers bind to the simulator's SMSC (one bind per carrier worker);
    ``backlog`` leaves the carrier workers to ``Spawned.start_carriers``. Each part's session
    id is in ``Spawned.sessions``, for its CPU time."""
    ports_free(port, sim_port, *([sim_port + 1] if carrier == "smpp" else []))
    settings = get_settings()
    env = {
        **os.environ,
        "MYCPAAS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MYCPAAS_CARRIER_URL": f"http://127.0.0.1:{sim_port}",
        "MYCPAAS_API_RATE_LIMIT_PER_S": "0",
        "MYCPAAS_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8,::1/128",  # the callback sink
        # As configured (INFO by default, as compose runs): a line per status change is part
        # of what a message costs. The parts' logs go to a file, not the terminal.
        "MYCPAAS_LOG_LEVEL": settings.log_level,
    }
    sim = ["carrier-sim", "--port", str(sim_port), "--latency-ms", str(latency_ms)]
    if carrier == "smpp":
        smpp_port = sim_port + 1
        env |= {"MYCPAAS_CARRIER": "smpp", "MYCPAAS_SMPP_HOST": "127.0.0.1",
                "MYCPAAS_SMPP_PORT": str(smpp_port)}  # fmt: skip
        sim += ["--smpp-port", str(smpp_port)]
    me = [sys.executable, "-m", "dispatcher.cli"]
    commands = {
        "carrier-sim": [*me, *sim],
        "api": [*me, "serve", "--port", str(port), "--workers", "2"],
        "segment": [*me, "worker", "-Q", "segment"],
        "callbacks": [*me, "worker", "-Q", "callbacks"],
        "maintenance": [*me, "worker", "-Q", "maintenance"],
        "beat": [*me, "beat", "--schedule-file", f"/tmp/mycpaas-bench-beat-{os.getpid()}"],
    }
    threads = ["-c", str(carrier_threads)] if carrier_threads else []
    carrier_workers = {
        f"carrier{n}": [*me, "worker", "-Q", "carrier", *threads, "-n",
                        f"carrier{n}-{os.getpid()}@%h"]
        for n in range(carriers)
    }  # fmt: skip
    log_path = Path(tempfile.gettempdir()) / f"mycpaas-bench-{os.getpid()}.log"
    click.echo(f"logs       {log_path}")
    with log_path.open("ab") as log_file, _Children(env, log_file) as children:
        for name, command in commands.items():
            children.start(name, command)

        def start_carriers() -> None:
            for name, command in carrier_workers.items():
                children.start(name, command)
            time.sleep(2)  # they connect to the broker (and bind)

        if not backlog:
            start_carriers()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for url in (f"http://127.0.0.1:{sim_port}/healthz", f"http://127.0.0.1:{port}/healthz"):
            _wait_up(url, deadline)
        time.sleep(2)  # workers connect to the broker
        yield Spawned(f"http://127.0.0.1:{port}", start_carriers if backlog else None,
                      children.sessions)  # fmt: skip


@contextlib.contextmanager
def callback_sink(port: int) -> Iterator[str]:
    """A fast local receiver for every status callback of the run (its own process)."""
    ports_free(port)
    with _Children({**os.environ}) as children:
        children.start("sink", [sys.executable, "-m", "dispatcher.bench.sink", "--port", str(port)])
        _wait_up(f"http://127.0.0.1:{port}/stats", time.monotonic() + STARTUP_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}/status"


def ports_free(*ports: int) -> None:
    """Refuse a run whose ports something already listens on: another bench's platform or sink
    would answer in its place (the API shares its port with SO_REUSEPORT), and the run would
    count what that one serves."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR: a closed run's connections in TIME_WAIT do not count, a listener does
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise click.ClickException(
                    f"port {port} is in use ({exc.strerror}): is another bench or platform "
                    "running? Pick other ports with --url and --callbacks"
                ) from exc


def _wait_up(url: str, deadline: float) -> None:
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise click.ClickException(f"{url} did not come up")
        time.sleep(0.2)


class _Children:
    """Spawned parts, each in a session of its own (stopped as a group, the first started
    last: workers unbind from the simulator and hand their receipts in first)."""

    def __init__(self, env: dict[str, str], output: IO[bytes] | None = None) -> None:
        self._env = env
        self._output = output  # their stdout and stderr; None: this process's
        self._procs: list[subprocess.Popen] = []
        self.sessions: dict[str, int] = {}  # part name → session id

    def start(self, name: str, command: list[str]) -> None:
        proc = subprocess.Popen(command, env=self._env, start_new_session=True,
                                stdout=self._output, stderr=self._output)  # fmt: skip
        self._procs.append(proc)
        self.sessions[name] = proc.pid

    def __enter__(self) -> "_Children":
        return self

    def __exit__(self, *_: object) -> None:
        for group in (self._procs[1:], self._procs[:1]):
            for proc in group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
