"""Benchmark of the Messages API: list latency at a million rows, and create throughput.

This is a benchmark, not a test: it builds its own Postgres database, seeds it with COPY,
starts the real server (``mycpaas serve``) as a subprocess and measures over HTTP.

Run it from the repository root::

    uv run python scripts/bench_api.py                      # 1,000,000 rows, 5,000 creates
    uv run python scripts/bench_api.py --keep               # reuse an already seeded database
    uv run python scripts/bench_api.py --concurrency 16,32,64 --workers 2,3   # sweep creates
    uv run python scripts/bench_api.py --rows 20000 --creates 500 --reps 5  # a quick check

What it does:

1. drops and re-creates the database ``--db-name`` (default ``mycpaas_bench``) on the server of
   ``--database-url``, runs the migrations and makes one account and one sender number with
   ``dispatcher.accounts``;
2. seeds ``--rows`` messages with ``COPY ... FREEZE`` (the secondary indexes are dropped for the
   load and re-created from their own definitions), then ``VACUUM (ANALYZE)``;
3. starts ``mycpaas serve --workers W`` with ``MYCPAAS_API_RATE_LIMIT_PER_S=0``: the
   per-account rate limiter (2000/s, burst 4000 by default) is OFF, since the bench fires one
   account as fast as it can;
4. measures list latency on the Twilio surface with one keep-alive client: the first page,
   a deep page by ``Page`` (= OFFSET), a 200-page walk along ``next_page_uri``, deep keyset
   pages, ``To`` and ``Status`` filters; prints the Postgres plans (custom and generic) of deep
   keyset queries, captured from ``dispatcher.listing.fetch_page`` itself, and an in-process
   time split (database + ORM, rendering, JSON) of one list call;
5. measures create throughput (``POST /v1/.../Messages``, form-encoded) for each worker count
   and concurrency, with the CPU each party used per request, the database connections the
   server opened, and ``GET /healthz`` at the same concurrency as the HTTP stack's floor;
6. prints a table and, as its last line, one JSON object with every figure.

What-if switch, for comparing a proposed fix without touching the product:
``--server-env MYCPAAS_DB_POOL_SIZE=40`` passes settings to the server.

The server is always stopped at the end, also on errors, Ctrl-C and SIGTERM. Wake-ups the
creates publish land in the Redis database of ``--redis-url`` (default DB 8, not the
platform's); the platform's keys there are deleted at start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import itertools
import json
import math
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql
from scratch import free_port

from dispatcher import cputime

ACCOUNT_NAME = "bench"
SENDER = "+4915799990000"
TO_NUMBERS = 1000
SPREAD = timedelta(days=30)
HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 300.0
LEGACY_QUEUES = ("segment", "media")  # queue keys of schemas without a Redis key prefix
TWILIO_LIST = "/2010-04-01/Accounts/{account}/Messages.json"
V1_CREATE = "/v1/Accounts/{account}/Messages"
MESSAGE_COLUMNS = (
    "sid", "account_sid", "to", "from_number", "body", "status", "direction", "num_segments",
    "num_media", "encoding", "smart_encoded", "media_urls", "status_callback",
    "validity_period_s", "expires_at", "error_code", "error_message", "idempotency_key",
    "idempotency_fingerprint", "stage", "next_attempt_at", "attempts", "date_created",
    "date_updated", "date_sent",
)  # fmt: skip
SEED_CHUNK_ROWS = 50_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- small helpers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Latency:
    """A latency distribution in milliseconds."""

    name: str
    samples_ms: list[float]
    note: str = ""

    def summary(self) -> dict[str, Any]:
        s = self.samples_ms
        return {
            "n": len(s),
            "median_ms": round(percentile(s, 50), 2),
            "p95_ms": round(percentile(s, 95), 2),
            "min_ms": round(min(s), 2),
            "max_ms": round(max(s), 2),
            "note": self.note,
        }


@dataclass
class CreateRun:
    kind: str  # "create", or "healthz": the HTTP stack's floor, GET /healthz, no database
    workers: int
    concurrency: int
    total: int
    elapsed_s: float
    req_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    bad: int  # answers other than 201 (create) or 200 (healthz), transport errors included
    bad_statuses: dict[str, int]
    client_cpu_ms_per_req: float
    server_cpu_ms_per_req: float
    postgres_cpu_ms_per_req: float
    db_connections_opened: int
    machine_busy_pct: float
    unattributed_busy_pct: float


@dataclass
class Results:
    config: dict[str, Any] = field(default_factory=dict)
    seeding: dict[str, float] = field(default_factory=dict)
    listing: dict[str, dict[str, Any]] = field(default_factory=dict)
    breakdown_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    plans: dict[str, dict[str, str]] = field(default_factory=dict)
    creates: list[CreateRun] = field(default_factory=list)
    floor: list[CreateRun] = field(default_factory=list)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def basic_auth(sid: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()


def to_numbers() -> list[str]:
    """A fixed set of distinct, valid German mobile numbers (+49 151 …)."""
    return [f"+49151{10_000_000 + k * 7919:08d}" for k in range(TO_NUMBERS)]


def with_query(uri: str, **changes: str) -> str:
    """``uri`` with some query parameters replaced (order kept)."""
    parts = urlsplit(uri)
    pairs = [(k, changes.pop(k) if k in changes else v) for k, v in parse_qsl(parts.query)]
    pairs += list(changes.items())
    return urlunsplit(parts._replace(query=urlencode(pairs, quote_via=quote, safe="")))


# --------------------------------------------------------------------------- CPU accounting


def proc_cpu_s(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        stat = cputime.read_stat(pid)
        if stat is not None:
            total += cputime.cpu_s(stat[1])
    return total


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


def postgres_backends(dbname: str) -> list[int]:
    """Backends serving ``dbname`` on this machine, by their process title."""
    pattern = re.compile(rf"^postgres: (\S+: )?\S+ {re.escape(dbname)} ")  # Debian: "15/main: "
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if pattern.match(title):
                found.append(int(entry.name))
    return found


def pg_sessions(db_url: str) -> int:
    """Connections ever opened to the bench database (pg_stat_database, flushed ~1 s late)."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def backends_cpu_s(before: dict[int, float], dbname: str) -> float:
    """CPU the bench database's backends used since ``before`` (pid -> seconds).

    Backends that exited meanwhile are lost, so with connection churn this is a lower bound.
    """
    total = 0.0
    for pid in postgres_backends(dbname):
        total += proc_cpu_s([pid]) - before.get(pid, 0.0)
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


# --------------------------------------------------------------------------- database setup


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def make_account() -> tuple[str, str, str]:
    """A new account and sender number, made with the project's own functions."""
    from dispatcher.accounts import add_number, create_account
    from schemas.db import session_scope

    with session_scope() as session:
        account, token = create_account(session, ACCOUNT_NAME)
        number = add_number(session, account.sid, SENDER)
    return account.sid, token, number.phone_number


def reuse_account() -> tuple[str, str, str] | None:
    """The seeded account of an earlier run, with a new token (only its hash is stored)."""
    from sqlmodel import select

    from dispatcher.accounts import rotate_token
    from schemas.db import session_scope
    from schemas.models import Account, PhoneNumber

    with session_scope() as session:
        account = session.exec(select(Account).where(Account.friendly_name == ACCOUNT_NAME)).first()
        if account is None:
            return None
        number = session.exec(
            select(PhoneNumber.phone_number).where(PhoneNumber.account_sid == account.sid)
        ).first()
        if number is None:
            return None
        token = rotate_token(account)
        session.add(account)
        session.commit()
        return account.sid, token, number


def _timestamp(micros: int) -> str:
    return (EPOCH + timedelta(microseconds=micros)).isoformat()


def default_columns() -> list[tuple[str, str]]:
    """Columns of the model this script does not know, with their default as COPY text.

    Keeps the seeding working when a column with a plain default is added to the model.
    """
    from pydantic_core import PydanticUndefined

    from schemas.models import Message

    table = Message.__table__  # type: ignore[attr-defined]
    missing = [name for name in MESSAGE_COLUMNS if name not in table.columns]
    if missing:
        raise RuntimeError(f"schemas/models.py has no column {missing}; update MESSAGE_COLUMNS")
    extras = []
    for column in table.columns:
        if column.name in MESSAGE_COLUMNS:
            continue
        model_field = Message.model_fields.get(column.name)
        default = model_field.default if model_field is not None else PydanticUndefined
        if isinstance(default, bool):
            extras.append((column.name, "t" if default else "f"))
        elif isinstance(default, int | float | str):
            extras.append((column.name, str(default)))
        elif default is None and column.nullable:
            extras.append((column.name, "\\N"))
        else:
            raise RuntimeError(f"no seed value for the new column messages.{column.name}")
    return extras


def schema_matches(url: str) -> bool:
    """Whether every table of the models has exactly the model's columns in the database.

    The migrations are edited in place while the project is young, so an old bench database
    can be "at head" and still differ; it is then re-created rather than reused.
    """
    from sqlmodel import SQLModel

    import schemas.models  # noqa: F401  (registers the tables)

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return all(
        found.get(table.name) == {c.name for c in table.columns}
        for table in SQLModel.metadata.sorted_tables
    )


def seed_text(
    rng: random.Random, start: int, stop: int, rows: int, account: str, sender: str,
    numbers: Sequence[str], base_us: int, step_us: int, suffix: str,
) -> str:  # fmt: skip
    """COPY text for rows ``start..stop`` (0 is the oldest). Values carry no tab or backslash."""
    lines = []
    recent = rows - max(1, rows // 100)  # only the newest 1 % can still be in flight
    for i in range(start, stop):
        created = base_us + i * step_us + rng.randrange(max(1, step_us // 2))
        roll = rng.random()
        if i >= recent and roll < 0.30:
            status = "queued" if roll < 0.20 else "sending"
        elif roll < 0.05:
            status = "failed"
        elif roll < 0.10:
            status = "sent"
        else:
            status = "delivered"
        queued = status == "queued"
        sent = created + rng.randrange(200_000, 2_000_000)
        updated = created if queued else sent + rng.randrange(0, 5_000_000)
        failed = status == "failed"
        in_flight = status in ("queued", "sending")
        fields = (
            f"SM{rng.getrandbits(128):032x}",
            account,
            numbers[rng.randrange(len(numbers))],
            sender,
            f"Bench message {i}: your code is {i % 1_000_000:06d}",
            status,
            "outbound-api",
            "1",
            "0",
            "GSM-7",
            "f",
            "[]",
            "\\N",
            "36000",
            _timestamp(created + 36_000_000_000),
            "30003" if failed else "\\N",
            "Unreachable destination handset" if failed else "\\N",
            "\\N",
            "\\N",
            "segment" if queued else ("carrier" if status == "sending" else "done"),
            _timestamp(created + 30_000_000) if in_flight else "\\N",
            "0" if queued else "1",
            _timestamp(created),
            _timestamp(updated),
            "\\N" if queued else _timestamp(sent),
        )
        lines.append("\t".join(fields) + suffix)
    lines.append("")
    return "\n".join(lines)


def seed_messages(url: str, account: str, sender: str, rows: int, seed: int) -> dict[str, float]:
    """COPY ``rows`` messages in; indexes are rebuilt afterwards, then VACUUM (ANALYZE)."""
    timings: dict[str, float] = {}
    rng = random.Random(seed)
    numbers = to_numbers()
    now_us = (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1)
    spread_us = SPREAD // timedelta(microseconds=1)
    step_us = max(2, spread_us // max(rows, 1))
    base_us = now_us - step_us * rows - 60_000_000  # the newest row is a minute old
    extras = default_columns()
    suffix = "".join(f"\t{text}" for _, text in extras)
    names = [*MESSAGE_COLUMNS, *(name for name, _ in extras)]
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in names)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute("SET LOCAL session_replication_role = replica")  # skip per-row FK checks
        conn.execute("TRUNCATE messages CASCADE")  # empty anyway; lets COPY write frozen rows
        indexes = conn.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = 'messages'::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
            """
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        copy_sql = sql.SQL("COPY messages ({}) FROM STDIN WITH (FREEZE)").format(columns)
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for start in range(0, rows, SEED_CHUNK_ROWS):
                stop = min(rows, start + SEED_CHUNK_ROWS)
                copy.write(
                    seed_text(
                        rng, start, stop, rows, account, sender, numbers, base_us, step_us, suffix
                    )
                )
        timings["copy_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)  # the migration's own definitions, unchanged
        timings["index_s"] = time.perf_counter() - mark
        conn.commit()
    mark = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) messages")
    timings["vacuum_analyze_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    return {k: round(v, 2) for k, v in timings.items()}


def count_messages(url: str, account: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM messages WHERE account_sid = %s", (account,))
        return int(row.fetchone()[0])  # type: ignore[index]


def _where(account: str, column: str | None, value: str | None) -> tuple[sql.Composed, list[Any]]:
    if column is None:
        return sql.SQL("account_sid = %s").format(), [account]
    return sql.SQL("account_sid = %s AND {} = %s").format(sql.Identifier(column)), [account, value]


def count_where(url: str, account: str, column: str, value: str) -> int:
    where, params = _where(account, column, value)
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM messages WHERE {}").format(where), params)
        return int(row.fetchone()[0])  # type: ignore[index]


def edge_at(
    url: str, account: str, depth: int, column: str | None = None, value: str | None = None
) -> tuple[datetime, str]:
    """The (date_created, sid) of the row ``depth`` rows into the newest-first list."""
    where, params = _where(account, column, value)
    query = sql.SQL(
        "SELECT date_created, sid FROM messages WHERE {} "
        "ORDER BY date_created DESC, sid DESC OFFSET %s LIMIT 1"
    ).format(where)
    with psycopg.connect(url) as conn:
        row = conn.execute(query, [*params, max(0, depth - 1)]).fetchone()
    if row is None:
        raise RuntimeError(f"no row at depth {depth} ({column}={value})")
    return row[0], row[1]


def token_uri(
    account: str, edge: tuple[datetime, str], page_size: int, depth: int, **filters: str
) -> str:
    """The URI ``next_page_uri`` carries for the page after ``edge``."""
    from dispatcher.listing import Token

    token = Token(True, edge[0], edge[1]).encode()
    pairs = [*filters.items(), ("PageSize", str(page_size)), ("Page", str(depth // page_size))]
    pairs.append(("PageToken", token))
    path = TWILIO_LIST.format(account=account)
    return f"{path}?{urlencode(pairs, quote_via=quote, safe='')}"


# --------------------------------------------------------------------------- the server


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


# --------------------------------------------------------------------------- listing


def timed_get(client: httpx.Client, uri: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(uri)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {uri} answered {response.status_code}: {response.text[:300]}")
    return elapsed_ms, response


def repeat(client: httpx.Client, uri: str, times: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        timed_get(client, uri)
    return [timed_get(client, uri)[0] for _ in range(times)]


def walk(client: httpx.Client, uri: str, pages: int) -> tuple[list[float], str | None, int]:
    """Follow ``next_page_uri`` for up to ``pages`` pages: latencies, the next URI, rows seen."""
    latencies: list[float] = []
    seen = 0
    next_uri: str | None = uri
    while next_uri is not None and len(latencies) < pages:
        elapsed_ms, response = timed_get(client, next_uri)
        latencies.append(elapsed_ms)
        body = response.json()
        seen += len(body["messages"])
        next_uri = body["next_page_uri"]
    return latencies, next_uri, seen


def bench_listing(
    server: Server, db_url: str, account: str, token: str, reps: int, walk_pages: int,
    results: Results,
) -> None:  # fmt: skip
    path = TWILIO_LIST.format(account=account)
    headers = {"Authorization": basic_auth(account, token)}
    total = count_messages(db_url, account)
    out = results.listing

    def record(item: Latency) -> None:
        out[item.name] = item.summary()
        s = out[item.name]
        print(
            f"  {item.name:<44} n={s['n']:<4} median={s['median_ms']:>8.2f} ms"
            f"  p95={s['p95_ms']:>8.2f} ms  {item.note}",
            flush=True,
        )

    with httpx.Client(base_url=server.url, headers=headers, timeout=HTTP_TIMEOUT_S) as client:
        print("list latency (Twilio surface, one keep-alive client):", flush=True)
        record(Latency("page0_ps50", repeat(client, f"{path}?PageSize=50", reps)))
        record(Latency("page0_ps1000", repeat(client, f"{path}?PageSize=1000", reps)))

        deep_page = min(10_000, max(1, total // 50 - 1))
        offset_reps = max(3, reps // 8)
        record(
            Latency(
                f"offset_page{deep_page}_ps50",
                repeat(client, f"{path}?PageSize=50&Page={deep_page}", offset_reps, warmup=1),
                note=f"Page=N is OFFSET {deep_page * 50:,}",
            )
        )

        # Follow next_page_uri from page 0, as a client paging through everything would.
        pages = min(walk_pages, max(1, total // 1000 - 1))
        lat, deep_uri, seen = walk(client, f"{path}?PageSize=1000", pages)
        note = f"{len(lat)} pages, {seen:,} rows"
        record(Latency("walk_ps1000_all_pages", lat, note=note))
        tail = lat[-50:]
        first_row = (len(lat) - len(tail)) * 1000
        record(Latency("walk_ps1000_last50_pages", tail, note=f"rows {first_row:,} to {seen:,}"))
        lat50, _, seen50 = walk(client, f"{path}?PageSize=50", walk_pages)
        record(Latency("walk_ps50_all_pages", lat50, note=f"{len(lat50)} pages, {seen50:,} rows"))
        if deep_uri is not None:
            depth = f"after row {seen:,} via next_page_uri"
            record(Latency("next_uri_deep_ps1000", repeat(client, deep_uri, reps), note=depth))
            deep50 = with_query(deep_uri, PageSize="50")
            record(Latency("next_uri_deep_ps50", repeat(client, deep50, reps), note=depth))

        # The same tokens next_page_uri would carry, at half and nearly all of the table.
        for label, depth_rows in (("mid", total // 2), ("end", total - 100)):
            edge = edge_at(db_url, account, depth_rows)
            uri = token_uri(account, edge, 50, depth_rows)
            note = f"token after row {depth_rows:,}"
            record(Latency(f"keyset_{label}_ps50", repeat(client, uri, reps), note=note))
        deep_uris = results.config.setdefault("deep_token_uris", {})
        deep_uris["none"] = token_uri(account, edge_at(db_url, account, total // 2), 50, total // 2)

        # Filters: To (about 1/1000 of the rows each) and Status.
        newest_to = client.get(f"{path}?PageSize=1").json()["messages"][0]["to"]
        to_path = f"{path}?{urlencode({'To': newest_to}, quote_via=quote, safe='')}"
        record(Latency("to_page0_ps50", repeat(client, f"{to_path}&PageSize=50", reps)))
        to_lat: list[float] = []
        to_rows = 0
        for number in to_numbers()[:3]:
            query = urlencode({"To": number, "PageSize": "50"}, quote_via=quote, safe="")
            lat_to, _, rows_to = walk(client, f"{path}?{query}", 10_000)
            to_lat += lat_to
            to_rows += rows_to
        record(Latency("to_walk_ps50_all_pages", to_lat, note=f"3 numbers, {to_rows:,} rows"))
        to_depth = max(1, count_where(db_url, account, "to", newest_to) - 10)
        edge = edge_at(db_url, account, to_depth, "to", newest_to)
        uri = token_uri(account, edge, 50, to_depth, To=newest_to)
        deep_uris[f"To={newest_to}"] = uri
        note = f"token after row {to_depth:,} of one To"
        record(Latency("to_keyset_end_ps50", repeat(client, uri, reps), note=note))

        for status in ("delivered", "failed"):
            status_path = f"{path}?Status={status}"
            first = repeat(client, f"{status_path}&PageSize=50", reps)
            record(Latency(f"status_{status}_page0_ps50", first))
            lat_s, _, seen_s = walk(client, f"{status_path}&PageSize=1000", walk_pages // 2)
            record(
                Latency(
                    f"status_{status}_walk_ps1000_last50",
                    lat_s[-50:],
                    note=f"{len(lat_s)} pages, {seen_s:,} rows",
                )
            )
            depth_rows = max(1, count_where(db_url, account, "status", status) - 100)
            edge = edge_at(db_url, account, depth_rows, "status", status)
            uri = token_uri(account, edge, 50, depth_rows, Status=status)
            deep_uris[f"Status={status}"] = uri
            record(
                Latency(
                    f"status_{status}_keyset_end_ps50",
                    repeat(client, uri, reps),
                    note=f"token after row {depth_rows:,} of {status}",
                )
            )


# --------------------------------------------------------------------------- plans and breakdown


def capture_list_sql(account: str, params: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The exact SQL and parameters ``dispatcher.listing.fetch_page`` sends for ``params``."""
    from sqlalchemy import event

    from dispatcher.listing import fetch_page, parse_list_query
    from schemas.db import get_engine

    captured: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", grab)
    try:
        fetch_page(account, parse_list_query({k: [v] for k, v in params.items()}))
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    statement, parameters = next(c for c in reversed(captured) if "FROM messages" in c[0])
    return statement, dict(parameters)


def explain_plans(db_url: str, account: str, params: dict[str, str]) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the list query, as a custom and as a generic plan.

    psycopg prepares a statement server-side after it ran 5 times on a connection, and
    Postgres may then switch to a generic plan; both must use the index.
    """
    statement, parameters = capture_list_sql(account, params)
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    numbered = re.sub(r"%\((\w+)\)s", positional, statement)
    values = [parameters[name] for name in names]
    placeholders = sql.SQL(", ").join(sql.Literal(v) for v in values)
    plans: dict[str, str] = {"sql": statement, "params": repr(values)}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("PREPARE bench_list AS {}").format(sql.SQL(numbered)))  # type: ignore[arg-type]
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.execute(sql.SQL("SET plan_cache_mode = {}").format(sql.Literal(mode)))
            query = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_list ({})").format(
                placeholders
            )
            rows = conn.execute(query).fetchall()
            plans[mode.removeprefix("force_")] = "\n".join(r[0] for r in rows)
    return plans


def breakdown(account: str, params: dict[str, str], reps: int) -> dict[str, float]:
    """Median ms of each step of one list call, run in this process (no HTTP)."""
    from fastapi.responses import JSONResponse

    from dispatcher.listing import fetch_page, paging, parse_list_query
    from dispatcher.render import twilio_message, twilio_path

    steps: dict[str, list[float]] = {"db_and_orm": [], "render": [], "json": [], "total": []}
    query = parse_list_query({k: [v] for k, v in params.items()})
    for i in range(reps + 2):
        t0 = time.perf_counter()
        page = fetch_page(account, query)
        t1 = time.perf_counter()
        body: dict[str, object] = {"messages": [twilio_message(m) for m in page.messages]}
        body.update(paging(f"{twilio_path(account)}.json", page))
        t2 = time.perf_counter()
        JSONResponse(body)
        t3 = time.perf_counter()
        if i >= 2:
            for name, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                value_ms = value * 1000
                steps[name].append(value_ms)
    return {name: round(percentile(v, 50), 2) for name, v in steps.items()}


def plan_summary(plan: str) -> str:
    lines = plan.splitlines()
    wanted = re.compile(r"Scan|Index Cond|Filter|Sort|Limit|Planning Time|Execution Time")
    keep = [line.strip() for line in lines if wanted.search(line)]
    return "\n    ".join(keep[:10])


def plan_facts(plan: str) -> dict[str, object]:
    """The figures of a plan for the JSON line: scan nodes, sort or not, and the timings."""

    def number(label: str) -> float | None:
        match = re.search(rf"{label}: ([0-9.]+) ms", plan)
        return float(match.group(1)) if match else None

    return {
        "scans": [
            scan.strip()
            for scan in re.findall(r"((?:Index Only |Index |Seq |Bitmap Heap )?Scan[^(]*)\(", plan)
        ],
        "sort": "Sort" in plan,
        "planning_ms": number("Planning Time"),
        "execution_ms": number("Execution Time"),
    }


# --------------------------------------------------------------------------- creates


Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def _fire(
    clients: Sequence[httpx.AsyncClient], total: int, send: Send, expect: int,
    latencies: list[float], statuses: Counter[int], errors: list[str],
) -> float:  # fmt: skip
    """``total`` requests spread over the clients, each with one keep-alive connection."""
    counter = itertools.count()

    async def one_client(client: httpx.AsyncClient) -> None:
        while (n := next(counter)) < total:
            started = time.perf_counter()
            try:
                response = await send(client, n)
            except httpx.HTTPError as exc:
                statuses[0] += 1
                errors.append(repr(exc))
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] += 1
            if response.status_code != expect and len(errors) < 5:
                errors.append(f"{response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(one_client(client) for client in clients))
    return time.perf_counter() - started


async def _create_phase(
    server: Server, account: str, token: str, sender: str, total: int, concurrency: int,
    warmup: int, db_url: str, kind: str,
) -> CreateRun:  # fmt: skip
    path = V1_CREATE.format(account=account)
    numbers = to_numbers()

    async def create(client: httpx.AsyncClient, n: int) -> httpx.Response:
        data = {"To": numbers[n % len(numbers)], "From": sender, "Body": f"Bench create {n}"}
        return await client.post(path, data=data)

    async def healthz(client: httpx.AsyncClient, _n: int) -> httpx.Response:
        return await client.get("/healthz")

    send, expect = (create, 201) if kind == "create" else (healthz, 200)
    db_name = urlsplit(db_url).path.lstrip("/")
    # One client per simulated caller: httpx's pool scans every connection on each request,
    # so one pool of 64 connections costs the (shared, 2-core) machine more than the server.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    headers = {"Authorization": basic_auth(account, token)}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.url, headers=headers, limits=limits, timeout=HTTP_TIMEOUT_S
                )
            )
            for _ in range(concurrency)
        ]
        await _fire(clients, warmup, send, expect, [], Counter(), [])
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors: list[str] = []
        await asyncio.sleep(1.5)  # let the warm-up's statistics reach pg_stat_database
        sessions0 = pg_sessions(db_url)
        server_pids = server.pids()
        pg0 = {pid: proc_cpu_s([pid]) for pid in postgres_backends(db_name)}
        cpu0 = (resource.getrusage(resource.RUSAGE_SELF), proc_cpu_s(server_pids))
        busy0, all0 = machine_cpu()
        elapsed = await _fire(clients, total, send, expect, latencies, statuses, errors)
        busy1, all1 = machine_cpu()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = proc_cpu_s(server_pids) - cpu0[1]
        pg_cpu = backends_cpu_s(pg0, db_name)
        await asyncio.sleep(1.5)
        opened = pg_sessions(db_url) - sessions0 - 1  # minus the one that asked
    client_cpu = (usage1.ru_utime + usage1.ru_stime) - (cpu0[0].ru_utime + cpu0[0].ru_stime)
    busy_s = (busy1 - busy0) / cputime.TICKS_PER_S
    cores = os.cpu_count() or 1
    bad = sum(n for code, n in statuses.items() if code != expect)
    for line in errors[:5]:
        print(f"    unexpected answer: {line}", flush=True)
    per = 1000 / max(total, 1)
    return CreateRun(
        kind=kind,
        workers=server.workers,
        concurrency=concurrency,
        total=total,
        elapsed_s=round(elapsed, 2),
        req_per_s=round(total / elapsed, 1),
        p50_ms=round(percentile(latencies, 50), 2) if latencies else float("nan"),
        p95_ms=round(percentile(latencies, 95), 2) if latencies else float("nan"),
        p99_ms=round(percentile(latencies, 99), 2) if latencies else float("nan"),
        bad=bad,
        bad_statuses={str(k): v for k, v in statuses.items() if k != expect},
        client_cpu_ms_per_req=round(client_cpu * per, 3),
        server_cpu_ms_per_req=round(server_cpu * per, 3),
        postgres_cpu_ms_per_req=round(pg_cpu * per, 3),
        db_connections_opened=opened,
        machine_busy_pct=round(100 * (busy1 - busy0) / max(all1 - all0, 1), 1),
        unattributed_busy_pct=round(
            100 * max(0.0, busy_s - client_cpu - server_cpu - pg_cpu) / (elapsed * cores), 1
        ),
    )


def bench_creates(
    server: Server, account: str, token: str, sender: str, total: int, concurrency: int,
    db_url: str, kind: str = "create",
) -> CreateRun:  # fmt: skip
    warmup = max(200, concurrency * 5)
    run = asyncio.run(
        _create_phase(server, account, token, sender, total, concurrency, warmup, db_url, kind)
    )
    print(
        f"  {run.kind:<7} workers={run.workers} concurrency={run.concurrency:<3}"
        f" {run.req_per_s:>8.1f}/s"
        f"  p50={run.p50_ms:.1f} p95={run.p95_ms:.1f} p99={run.p99_ms:.1f} ms"
        f"  unexpected={run.bad}  cpu ms/req: client {run.client_cpu_ms_per_req:.2f}"
        f" server {run.server_cpu_ms_per_req:.2f} pg {run.postgres_cpu_ms_per_req:.2f}"
        f"  db connects {run.db_connections_opened}"
        f"  machine busy {run.machine_busy_pct:.0f}% (other {run.unattributed_busy_pct:.0f}%)",
        flush=True,
    )
    return run


# --------------------------------------------------------------------------- report


def print_table(results: Results) -> None:
    print("\n" + "=" * 100)
    print(f"config: {json.dumps(results.config, default=str)}")
    if results.seeding:
        print(f"seeding: {results.seeding}")
    if results.listing:
        print(
            f"\n{'list scenario':<44} {'n':>4} {'median ms':>10} {'p95 ms':>9} {'max ms':>9}  note"
        )
        for name, s in results.listing.items():
            print(
                f"{name:<44} {s['n']:>4} {s['median_ms']:>10.2f} {s['p95_ms']:>9.2f}"
                f" {s['max_ms']:>9.2f}  {s['note']}"
            )
    for name, steps in results.breakdown_ms.items():
        print(f"in-process breakdown {name} (median ms): {steps}")
    for name, plans in results.plans.items():
        for mode in ("custom_plan", "generic_plan"):
            print(f"\nplan of a deep keyset page, filter {name} ({mode}):")
            print(f"    {plan_summary(plans[mode])}")
    if results.creates:
        print(
            f"\n{'kind':<8} {'workers':>7} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8}"
            f" {'p99 ms':>8} {'bad':>5} {'cli cpu':>8} {'srv cpu':>8} {'pg cpu':>7}"
            f" {'db conn':>7} {'busy%':>6} {'other%':>6}"
        )
        for r in [*results.creates, *results.floor]:
            print(
                f"{r.kind:<8} {r.workers:>7} {r.concurrency:>5} {r.req_per_s:>9.1f}"
                f" {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.p99_ms:>8.1f} {r.bad:>5}"
                f" {r.client_cpu_ms_per_req:>8.2f} {r.server_cpu_ms_per_req:>8.2f}"
                f" {r.postgres_cpu_ms_per_req:>7.2f} {r.db_connections_opened:>7}"
                f" {r.machine_busy_pct:>6.0f} {r.unattributed_busy_pct:>6.0f}"
            )
        best = max(results.creates, key=lambda r: r.req_per_s)
        print(
            f"best: {best.req_per_s:.1f} creates/s at workers={best.workers},"
            f" concurrency={best.concurrency}. cpu columns: ms of CPU per request (pg: lower"
            " bound); db conn: connections opened during the run; other%: machine CPU used by"
            " processes outside the bench"
        )
    print("=" * 100)


def final_json(results: Results) -> str:
    best = max(results.creates, key=lambda r: r.req_per_s) if results.creates else None
    document = {
        "config": results.config,
        "seeding": results.seeding,
        "listing": results.listing,
        "breakdown_ms": results.breakdown_ms,
        "plans": {
            name: {mode: plan_facts(text) for mode, text in plans.items() if mode.endswith("_plan")}
            for name, plans in results.plans.items()
        },
        "creates": [asdict(r) for r in results.creates],
        "best_create": asdict(best) if best else None,
        "http_floor": [asdict(r) for r in results.floor],
    }
    return json.dumps(document, default=str, separators=(",", ":"))


# --------------------------------------------------------------------------- main


def int_list(raw: str) -> list[int]:
    try:
        values = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas: {raw}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers: {raw}")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="messages to seed")
    parser.add_argument("--creates", type=int, default=5000, help="measured creates per config")
    parser.add_argument(
        "--concurrency", type=int_list, default=[32], help="clients, e.g. 32 or 16,32,64"
    )
    parser.add_argument(
        "--workers", type=int_list, default=[2], help="server processes, e.g. 2 or 2,3"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MYCPAAS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="any database on the Postgres server; the bench database is made next to it",
    )  # fmt: skip
    parser.add_argument("--db-name", default="mycpaas_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    parser.add_argument("--reps", type=int, default=40, help="repetitions per list scenario")
    parser.add_argument("--walk-pages", type=int, default=200, help="pages to follow")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed of the data")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="MYCPAAS_X=V",
        help="extra server setting, e.g. MYCPAAS_DB_POOL_SIZE=40 (repeatable)",
    )
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--skip-create", action="store_true")
    return parser.parse_args(argv)


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    db_url = with_database(args.database_url, args.db_name)
    # The project reads its settings once, from the environment: set it before any import.
    os.environ.update(
        {
            "MYCPAAS_DATABASE_URL": db_url,
            "MYCPAAS_BROKER_URL": args.redis_url,
            "MYCPAAS_REDIS_URL": args.redis_url,
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
    from dispatcher.phone import to_e164
    from schemas.db import dispose_engine
    from schemas.migrate import upgrade

    if to_e164(SENDER) != SENDER or any(to_e164(n) != n for n in to_numbers()):
        raise RuntimeError("the bench phone numbers must be valid E.164")

    results = Results()
    results.config = {
        "rows_requested": args.rows,
        "creates": args.creates,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "db": args.db_name,
        "rate_limit": "MYCPAAS_API_RATE_LIMIT_PER_S=0 (off)",
        "server": "mycpaas serve",
        "server_env": args.server_env,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    credentials = None
    if args.keep and database_exists(args.database_url, args.db_name):
        upgrade(db_url)
        if schema_matches(db_url):
            credentials = reuse_account()
        if credentials is not None and count_messages(db_url, credentials[0]) < args.rows:
            credentials = None  # seeded with fewer rows than asked for
        print(f"reusing {args.db_name}" if credentials else "cannot reuse the database; seeding")
    if credentials is None:
        dispose_engine()  # its pooled connections die with the dropped database
        create_database(args.database_url, args.db_name)
        upgrade(db_url)
        credentials = make_account()
        print(f"seeding {args.rows:,} messages into {args.db_name} with COPY ...", flush=True)
        results.seeding = seed_messages(
            db_url, credentials[0], credentials[2], args.rows, args.seed
        )
        rate = args.rows / max(results.seeding["total_s"], 1e-9)
        print(
            f"seeded in {results.seeding['total_s']:.1f} s ({rate:,.0f} rows/s): {results.seeding}"
        )
    account, token, sender = credentials
    rows = count_messages(db_url, account)
    results.config["rows_in_db"] = rows
    print(f"account {account}, sender {sender}, {rows:,} messages", flush=True)

    env = server_env(db_url, args.redis_url, args.server_env)
    from schemas.settings import get_settings

    prefix = str(getattr(get_settings(), "redis_prefix", "mycpaas:"))
    clear_bench_redis(args.redis_url, prefix)
    server: Server | None = None
    try:
        for index, workers in enumerate(args.workers):
            server = Server(workers, env)
            server.wait_ready()
            print(f"server {server.url} with {workers} workers (log {server.log_path})", flush=True)
            if index == 0 and not args.skip_list:
                bench_listing(server, db_url, account, token, args.reps, args.walk_pages, results)
                for name, uri in results.config["deep_token_uris"].items():
                    query = dict(parse_qsl(urlsplit(uri).query))
                    results.plans[name] = explain_plans(db_url, account, query)
                deep = dict(parse_qsl(urlsplit(results.config["deep_token_uris"]["none"]).query))
                for size in ("50", "1000"):
                    name = f"keyset_mid_ps{size}"
                    results.breakdown_ms[name] = breakdown(account, {**deep, "PageSize": size}, 20)
            if not args.skip_create:
                print(f"creates ({args.creates:,} per run, rate limiter off):", flush=True)
                for concurrency in args.concurrency:
                    results.creates.append(
                        bench_creates(
                            server, account, token, sender, args.creates, concurrency, db_url
                        )
                    )
                print("  HTTP floor for comparison (GET /healthz, no database):", flush=True)
                floor = bench_creates(
                    server, account, token, sender, args.creates, args.concurrency[0], db_url,
                    kind="healthz",
                )  # fmt: skip
                results.floor.append(floor)
            server.stop()
            server = None
    finally:
        if server is not None:
            server.stop()
        clear_bench_redis(args.redis_url, prefix)
        with contextlib.suppress(Exception):
            dispose_engine()
    results.config["loadavg_end"] = os.getloadavg()
    print_table(results)
    print(final_json(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
