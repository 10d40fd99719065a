"""What the Messages API benchmarks share: options, database, the server under test, the report.

``bench_list.py`` (list latency at a million rows) and ``bench_creates.py`` (create
throughput) are benchmarks, not tests. Each run:

1. builds its own Postgres database next to ``--database-url`` and seeds it with COPY, or
   reuses an earlier run's with ``--keep`` (see ``seeded_database.py``);
2. starts the real server, ``mycpaas serve --workers W``, as a subprocess with
   ``MYCPAAS_API_RATE_LIMIT_PER_S=0``: the per-account rate limiter (2000/s, burst 4000 by
   default) is OFF, since the bench fires one account as fast as it can;
3. measures over HTTP, then prints a table and, as its last line, one JSON object with every
   figure.

What-if switch, for comparing a proposed fix without touching the product:
``--server-env MYCPAAS_DB_POOL_SIZE=40`` passes settings to the server.

The server is always stopped at the end, also on errors, Ctrl-C and SIGTERM. Wake-ups the
creates publish land in the Redis database of ``--redis-url`` (default DB 8, not the
platform's); the platform's keys there are deleted at start and end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from scratch import free_port
from seeded_database import SENDER, count_messages, open_database, to_numbers, with_database

from dispatcher.bench import cputime

HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 300.0
LEGACY_QUEUES = ("segment", "media")  # queue keys of schemas without a Redis key prefix


@dataclass
class Bench:
    """A prepared run: its database and account, the server's environment, the report's head."""

    config: dict[str, Any]
    seeding: dict[str, float]  # empty when an earlier run's database was reused
    db_url: str
    account: str
    token: str
    sender: str
    env: dict[str, str]  # the server's
    redis_url: str
    redis_prefix: str


def _set_environment(db_url: str, redis_url: str) -> None:
    """The project reads its settings once, from the environment: set it before any import."""
    os.environ.update(
        {
            "MYCPAAS_DATABASE_URL": db_url,
            "MYCPAAS_BROKER_URL": redis_url,
            "MYCPAAS_REDIS_URL": redis_url,
            "MYCPAAS_LOG_LEVEL": "WARNING",
            "MYCPAAS_API_RATE_LIMIT_PER_S": "0",
        }
    )
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # httpcore tries `import sniffio` on every request; when it is not installed each failed
    # import searches sys.path again (~2 ms of client CPU per create). A None entry in
    # sys.modules makes that import fail at once; httpcore then uses asyncio, as it would.
    if importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def prepare(args: argparse.Namespace, own_config: dict[str, Any]) -> Bench:
    """The environment, the database and its account for a run of ``args``.

    ``own_config`` (a bench's own options) goes into the report's config after the rows.
    """
    db_url = with_database(args.database_url, args.db_name)
    _set_environment(db_url, args.redis_url)
    from schemas.phone import to_e164

    if to_e164(SENDER) != SENDER or any(to_e164(n) != n for n in to_numbers()):
        raise RuntimeError("the bench phone numbers must be valid E.164")
    config = {
        "rows_requested": args.rows,
        **own_config,
        "db": args.db_name,
        "rate_limit": "MYCPAAS_API_RATE_LIMIT_PER_S=0 (off)",
        "server": "mycpaas serve",
        "server_env": args.server_env,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    credentials, seeding = open_database(
        args.database_url, args.db_name, args.rows, args.seed, args.keep
    )
    account, token, sender = credentials
    rows = count_messages(db_url, account)
    config["rows_in_db"] = rows
    print(f"account {account}, sender {sender}, {rows:,} messages", flush=True)
    env = server_env(db_url, args.redis_url, args.server_env)
    from schemas.settings import get_settings

    prefix = str(getattr(get_settings(), "redis_prefix", "mycpaas:"))
    return Bench(config, seeding, db_url, account, token, sender, env, args.redis_url, prefix)


@contextlib.contextmanager
def running(bench: Bench) -> Iterator[None]:
    """The bench's Redis keys cleared before and after, the engine disposed, also on errors."""
    from schemas.db import dispose_engine

    clear_bench_redis(bench.redis_url, bench.redis_prefix)
    try:
        yield
    finally:
        clear_bench_redis(bench.redis_url, bench.redis_prefix)
        with contextlib.suppress(Exception):
            dispose_engine()


@contextlib.contextmanager
def serving(env: dict[str, str], workers: int) -> Iterator[Server]:
    """A ready server with ``workers`` processes, stopped on leaving, also on errors."""
    server = Server(workers, env)
    try:
        server.wait_ready()
        print(f"server {server.url} with {workers} workers (log {server.log_path})", flush=True)
        yield server
    finally:
        server.stop()


def report(bench: Bench, print_sections: Callable[[], None], **sections: object) -> None:
    """The table between two rules, then, as the last line, one JSON object with every figure:
    the config, the seeding and a bench's own ``sections``."""
    bench.config["loadavg_end"] = os.getloadavg()
    print("\n" + "=" * 100)
    print(f"config: {json.dumps(bench.config, default=str)}")
    if bench.seeding:
        print(f"seeding: {bench.seeding}")
    print_sections()
    print("=" * 100)
    document = {"config": bench.config, "seeding": bench.seeding, **sections}
    print(json.dumps(document, default=str, separators=(",", ":")))


class Server:
    """``mycpaas serve`` as a subprocess; stop() is safe to call more than once."""

    def __init__(self, workers: int, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log_path = Path(tempfile.gettempdir()) / f"mycpaas_bench_server_{self.port}.log"
        self._log = self.log_path.open("wb")
        command = [str(Path(sys.executable).with_name("mycpaas")), "serve",
                   "--port", str(self.port), "--workers", str(workers)]  # fmt: skip
        self.proc = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.worker_pids: list[int] = []

    def wait_ready(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"{self.url}/healthz did not answer; see {self.log_path}")
        # Every worker must be up, not only the first one that answered.
        while self.workers > 1 and len(self.worker_pids) < self.workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {self.workers} workers started; see {self.log_path}")
            self.worker_pids = children_of(self.proc.pid, b"spawn_main")
            time.sleep(0.1)
        time.sleep(1.0)

    def pids(self) -> list[int]:
        return [self.proc.pid, *children_of(self.proc.pid)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.worker_pids = children_of(self.proc.pid) or self.worker_pids
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        for pid in self.worker_pids:  # orphans only if the master had to be killed
            stat = cputime.read_stat(pid)
            if stat is not None and int(stat[1][1]) in (1, self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


def server_env(database_url: str, redis_url: str, overrides: Sequence[str] = ()) -> dict[str, str]:
    env = {
        **os.environ,
        "MYCPAAS_DATABASE_URL": database_url,
        "MYCPAAS_BROKER_URL": redis_url,
        "MYCPAAS_REDIS_URL": redis_url,
        "MYCPAAS_LOG_LEVEL": "WARNING",
        "MYCPAAS_API_RATE_LIMIT_PER_S": "0",  # the per-account limiter would cap the bench
    }
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("MYCPAAS_"):
            raise ValueError(f"--server-env wants MYCPAAS_NAME=value, not {item!r}")
        env[name] = value
    return env


def clear_bench_redis(redis_url: str, prefix: str) -> None:
    """Empty the platform's keys (broker queues, wake-up marks) in the bench's Redis DB."""
    import redis

    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(redis_url)
        keys = [*client.scan_iter(match=f"{prefix}*", count=1000), *LEGACY_QUEUES]
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])


def children_of(parent: int, marker: bytes = b"") -> list[int]:
    """Child processes of ``parent`` whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = cputime.read_stat(entry.name)
            if stat is None or int(stat[1][1]) != parent:
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def basic_auth(sid: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The options of the database, the server and the data every Messages API bench has."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=1_000_000, help="messages to seed")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MYCPAAS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="any database on the Postgres server; the bench database is made next to it",
    )  # fmt: skip
    parser.add_argument("--db-name", default="mycpaas_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed of the data")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="MYCPAAS_X=V",
        help="extra server setting, e.g. MYCPAAS_DB_POOL_SIZE=40 (repeatable)",
    )
    return parser


def int_list(raw: str) -> list[int]:
    try:
        values = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas: {raw}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers: {raw}")
    return values


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
