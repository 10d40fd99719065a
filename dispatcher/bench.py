"""``mycpaas bench``: drive messages through the real API, time them to sent and delivered.

It creates a bench account and sender (fast: ``--sps``) in the database, sends ``-n`` messages
with ``-c`` concurrent clients (optionally paced to ``--rate`` per second), waits until every
message is delivered or failed, and reports throughput and latency percentiles from acceptance
(``date_created``) to ``date_sent`` and to delivery. ``--spawn`` starts the whole platform
(API, simulator, workers, beat) itself on a scratch store of its own (a database created next
to the configured Postgres, or a SQLite file), so one command measures everything on one
machine and leaves nothing behind. ``--callbacks`` gives every message a ``StatusCallback`` on
one local receiver (:mod:`dispatcher.sink`) and reports when the last callback arrived.
"""

import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import click
import httpx
import psycopg
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dispatcher import cputime
from dispatcher.accounts import add_number, create_account
from schemas.db import dispose_engine, session_scope
from schemas.migrate import upgrade
from schemas.models import (
    callback_attempts_table,
    callbacks_table,
    message_events_table,
    messages_table,
    segments_table,
)
from schemas.settings import get_settings

STARTUP_TIMEOUT_S = 30.0
POLL_S = 0.5
m = messages_table.c


@dataclass(frozen=True)
class Spawned:
    api: str
    start_carriers: Callable[[], None] | None  # None: they run from the start
    sessions: dict[str, int]  # part name → session id, for CPU time


@dataclass(frozen=True)
class Options:
    count: int
    concurrency: int
    rate: float | None
    timeout_s: float
    callback_url: str | None = None  # every message's StatusCallback (a sink's), or none
    bulk: int = 0  # messages per bulk create (POST …/Messages/Bulk); 0: one create per message


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _bench_sender() -> tuple[str, str, str]:
    with session_scope() as session:
        account, token = create_account(session, "bench")
        number = f"+1500555{random.randrange(1000, 9999)}"
        while True:
            try:
                add_number(session, account.sid, number, segments_per_second=100_000)
                break
            except Exception:  # taken by an earlier bench: pick another
                session.rollback()
                number = f"+1500555{random.randrange(1000, 9999)}"
    return account.sid, token, number


async def _send_all(api: str, sid: str, token: str, sender: str, options: Options) -> list[float]:
    """POST every message; returns the request latencies in seconds."""
    latencies: list[float] = []
    next_slot = time.monotonic()
    remaining = iter(range(options.count))
    # One single-connection client per simulated client: httpcore's shared async pool spends
    # more CPU assigning requests to connections than the requests cost, past a few dozen.
    limits = httpx.Limits(max_connections=1)

    def params(index: int) -> dict[str, str]:
        data = {"To": f"+1202555{index % 10000:04d}", "From": sender,
                "Body": f"bench message {index}"}  # fmt: skip
        if options.callback_url:
            data["StatusCallback"] = options.callback_url
        return data

    async def client_loop() -> None:
        nonlocal next_slot
        async with httpx.AsyncClient(
            base_url=api, auth=(sid, token), limits=limits, timeout=60
        ) as client:
            while batch := list(itertools.islice(remaining, options.bulk or 1)):
                if options.rate:
                    slot, next_slot = next_slot, max(next_slot, time.monotonic()) + 1 / options.rate
                    await asyncio.sleep(max(0.0, slot - time.monotonic()))
                started = time.monotonic()
                if options.bulk:
                    items = [params(index) for index in batch]
                    response = await client.post(f"/v1/Accounts/{sid}/Messages/Bulk", json=items)
                    accepted = response.status_code == 200 and not response.json()["rejected"]
                else:
                    response = await client.post(
                        f"/v1/Accounts/{sid}/Messages", data=params(batch[0])
                    )
                    accepted = response.status_code == 201
                if not accepted:
                    raise click.ClickException(
                        f"create answered {response.status_code}: {response.text[:500]}"
                    )
                latencies.append(time.monotonic() - started)

    await asyncio.gather(*(client_loop() for _ in range(options.concurrency)))
    return latencies


def _progress(sender: str) -> tuple[int, int]:
    with session_scope() as session:
        row = session.execute(
            select(func.count(), func.count().filter(m.status.in_(["delivered", "failed"]))).where(
                m.from_number == sender
            )
        ).one()
    return int(row[0]), int(row[1])


def _carrier_rate(sender: str) -> float | None:
    """Segments per second the carrier took, from the first submission to the last."""
    s = segments_table.c
    with session_scope() as session:
        count, first, last = session.execute(
            select(func.count(), func.min(s.date_submitted), func.max(s.date_submitted))
            .join(messages_table, m.sid == s.message_sid)
            .where(m.from_number == sender, s.date_submitted.is_not(None))
        ).one()
    if not count or first is None or last is None or last <= first:
        return None
    return float(count) / (last - first).total_seconds()


def _timings(sender: str) -> tuple[list[float], list[float], dict[str, int]]:
    e = message_events_table.c
    with session_scope() as session:
        rows = session.execute(
            select(m.status, m.date_created, m.date_sent, e.date_created)
            .select_from(messages_table.outerjoin(
                message_events_table, (e.message_sid == m.sid) & (e.status == "delivered")))
            .where(m.from_number == sender)
        ).all()  # fmt: skip
    to_sent = [(sent - created).total_seconds() for _s, created, sent, _d in rows if sent]
    to_delivered = [(done - created).total_seconds() for _s, created, _t, done in rows if done]
    statuses: dict[str, int] = {}
    for status, *_ in rows:
        statuses[status] = statuses.get(status, 0) + 1
    return to_sent, to_delivered, statuses


def _wait_segmented(sender: str, deadline: float) -> None:
    """Until none of the sender's messages waits for segmentation."""
    while time.monotonic() < deadline:
        with session_scope() as session:
            waiting = session.execute(
                select(func.count()).where(m.from_number == sender, m.stage == "segment")
            ).scalar()
        if not waiting:
            return
        time.sleep(POLL_S)


def run_bench(
    api: str,
    options: Options,
    sessions: dict[str, int] | None = None,
    start_carriers: Callable[[], None] | None = None,
) -> dict[str, object]:
    """Send, wait for every message to settle, report. ``sessions`` (part name → session id of
    the spawned processes) adds the CPU each part spent, per message; ``start_carriers`` (a
    backlog run) is called once every message is accepted and segmented."""
    sid, token, sender = _bench_sender()
    how = f"bulk creates of {options.bulk}" if options.bulk else "one create per message"
    click.echo(f"bench: {options.count} messages, {options.concurrency} clients, {how}, "
               f"rate {options.rate or 'unlimited'} requests/s, sender {sender}")  # fmt: skip
    measure_cpu = sessions is not None and cputime.available()
    cpu_before = cputime.snapshot(sessions or {}) if measure_cpu else {}
    started = time.monotonic()
    request_latencies = asyncio.run(_send_all(api, sid, token, sender, options))
    accepted_s = time.monotonic() - started
    if start_carriers is not None:
        _wait_segmented(sender, time.monotonic() + options.timeout_s)
        click.echo("backlog: every message accepted and segmented; starting the carrier workers")
        start_carriers()
    deadline = time.monotonic() + options.timeout_s
    while True:
        total, done = _progress(sender)
        if done >= total or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    finished_s = time.monotonic() - started
    to_sent, to_delivered, statuses = _timings(sender)
    callbacks = _callbacks_report(sid, sender, options, deadline) if options.callback_url else {}
    cpu = cputime.spent(cpu_before, cputime.snapshot(sessions or {})) if measure_cpu else {}
    carrier_rate = _carrier_rate(sender)
    ms = 1000.0
    report: dict[str, object] = {
        "messages": options.count,
        "concurrency": options.concurrency,
        "rate_limit_per_s": options.rate,
        "statuses": statuses,
        "intake_per_s": round(options.count / accepted_s, 1),
        "intake_p50_ms": round(percentile(request_latencies, 0.5) * ms, 1),
        "intake_p99_ms": round(percentile(request_latencies, 0.99) * ms, 1),
        "end_to_end_per_s": round(options.count / finished_s, 1),
        "carrier_segments_per_s": round(carrier_rate, 1) if carrier_rate else None,
        "sent_p50_ms": round(percentile(to_sent, 0.5) * ms, 1),
        "sent_p95_ms": round(percentile(to_sent, 0.95) * ms, 1),
        "sent_p99_ms": round(percentile(to_sent, 0.99) * ms, 1),
        "delivered_p50_ms": round(percentile(to_delivered, 0.5) * ms, 1),
        "delivered_p95_ms": round(percentile(to_delivered, 0.95) * ms, 1),
        "delivered_p99_ms": round(percentile(to_delivered, 0.99) * ms, 1),
        "delivered_mean_ms": round(statistics.fmean(to_delivered) * ms, 1)
        if to_delivered
        else None,
        "wall_s": round(finished_s, 2),
        **callbacks,
    }
    if cpu:
        report["cpu_s"] = cpu
        report["cpu_ms_per_message"] = round(sum(cpu.values()) * 1000 / options.count, 2)
    click.echo(
        "\n".join(
            [
                f"accepted   {options.count} in {accepted_s:.2f} s = {report['intake_per_s']}/s "
                f"(request p50 {report['intake_p50_ms']} ms, p99 {report['intake_p99_ms']} ms)",
                f"terminal   {sum(statuses.values())} in {finished_s:.2f} s = "
                f"{report['end_to_end_per_s']}/s  {statuses}",
                f"carrier    {report['carrier_segments_per_s']} segments/s, first to last hand-off",
                f"to sent      p50 {report['sent_p50_ms']} ms  p95 {report['sent_p95_ms']} ms  "
                f"p99 {report['sent_p99_ms']} ms",
                f"to delivered p50 {report['delivered_p50_ms']} ms  p95 "
                f"{report['delivered_p95_ms']} ms  p99 {report['delivered_p99_ms']} ms",
            ]
        )
    )
    if callbacks:
        click.echo(
            f"callbacks  {callbacks['callbacks_received']} of {callbacks['callbacks_owed']} "
            f"received at {callbacks['callbacks_per_s']}/s, the last "
            f"{callbacks['callbacks_after_last_terminal_s']} s after the last message settled"
        )
    if cpu:
        parts = "  ".join(
            f"{name} {seconds * 1000 / options.count:.2f}"
            for name, seconds in sorted(cpu.items(), key=lambda item: -item[1])
        )
        click.echo(f"cpu        {report['cpu_ms_per_message']} ms per message: {parts} "
                   "(postgres and redis-server: everything they served meanwhile)")  # fmt: skip
    click.echo(json.dumps(report))
    return report


def _callbacks_report(
    account_sid: str, sender: str, options: Options, deadline: float
) -> dict[str, object]:
    """Wait until the sink has every callback the run owes; when did the last one arrive?"""
    assert options.callback_url is not None
    stats_url = options.callback_url.rsplit("/", 1)[0] + "/stats"
    c = callbacks_table.c
    e = message_events_table.c
    with session_scope() as session:
        owed = session.execute(
            select(func.count()).where(c.account_sid == account_sid)
        ).scalar_one()
        last_terminal = session.execute(
            select(func.max(e.date_created))
            .join(messages_table, m.sid == e.message_sid)
            .where(m.from_number == sender, e.status.in_(["delivered", "failed"]))
        ).scalar_one()
    while True:
        stats = httpx.get(stats_url, timeout=5).json()
        if stats["count"] >= owed or time.monotonic() > deadline:
            break
        time.sleep(POLL_S / 5)
    a = callback_attempts_table.c
    with session_scope() as session:
        failed_attempts = dict(
            session.execute(
                select(a.error, func.count())
                .join(callbacks_table, c.id == a.callback_id)
                .where(c.account_sid == account_sid, a.error.is_not(None))
                .group_by(a.error)
            ).all()
        )
    span = (stats["last_at"] or 0) - (stats["first_at"] or 0)
    after = (stats["last_at"] or 0) - last_terminal.timestamp() if last_terminal else None
    return {
        "callbacks_owed": owed,
        "callbacks_received": stats["count"],
        "callbacks_by_status": stats["by_status"],
        "callbacks_per_s": round(stats["count"] / span, 1) if span > 0 else None,
        "callbacks_after_last_terminal_s": round(after, 2) if after is not None else None,
        "callback_attempts_failed": failed_attempts,
    }


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
            admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
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
    settings = get_settings()
    env = {
        **os.environ,
        "MYCPAAS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MYCPAAS_CARRIER_URL": f"http://127.0.0.1:{sim_port}",
        "MYCPAAS_API_RATE_LIMIT_PER_S": "0",
        "MYCPAAS_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8,::1/128",  # the callback sink
        "MYCPAAS_LOG_LEVEL": settings.log_level if settings.log_level != "INFO" else "WARNING",
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
    with _Children(env) as children:
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
    with _Children({**os.environ}) as children:
        children.start("sink", [sys.executable, "-m", "dispatcher.sink", "--port", str(port)])
        _wait_up(f"http://127.0.0.1:{port}/stats", time.monotonic() + STARTUP_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}/status"


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

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._procs: list[subprocess.Popen] = []
        self.sessions: dict[str, int] = {}  # part name → session id

    def start(self, name: str, command: list[str]) -> None:
        proc = subprocess.Popen(command, env=self._env, start_new_session=True)
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
