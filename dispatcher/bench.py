"""``mycpaas bench``: drive messages through the real API, time them to sent and delivered.

It creates a bench account and sender (fast: ``--sps``) in the database, sends ``-n`` messages
with ``-c`` concurrent clients (optionally paced to ``--rate`` per second), waits until every
message is delivered or failed, and reports throughput and latency percentiles from acceptance
(``date_created``) to ``date_sent`` and to delivery. ``--spawn`` starts the whole platform
(API, simulator, workers, beat) itself, so one command measures everything on one machine.
"""

import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import click
import httpx
from sqlalchemy import func, select

from dispatcher.accounts import add_number, create_account
from schemas.db import session_scope
from schemas.models import message_events_table, messages_table, segments_table
from schemas.settings import get_settings

STARTUP_TIMEOUT_S = 30.0
POLL_S = 0.5
m = messages_table.c


@dataclass(frozen=True)
class Spawned:
    api: str
    start_carriers: Callable[[], None] | None  # None: they run from the start


@dataclass(frozen=True)
class Options:
    count: int
    concurrency: int
    rate: float | None
    timeout_s: float


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

    async def client_loop() -> None:
        nonlocal next_slot
        async with httpx.AsyncClient(
            base_url=api, auth=(sid, token), limits=limits, timeout=30
        ) as client:
            for index in remaining:
                if options.rate:
                    slot, next_slot = next_slot, max(next_slot, time.monotonic()) + 1 / options.rate
                    await asyncio.sleep(max(0.0, slot - time.monotonic()))
                started = time.monotonic()
                response = await client.post(
                    f"/v1/Accounts/{sid}/Messages",
                    data={"To": f"+1202555{index % 10000:04d}", "From": sender,
                          "Body": f"bench message {index}"},
                )  # fmt: skip
                if response.status_code != 201:
                    raise click.ClickException(
                        f"create answered {response.status_code}: {response.text}"
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
    api: str, options: Options, start_carriers: Callable[[], None] | None = None
) -> dict[str, object]:
    """Send, wait for every message to settle, report; ``start_carriers`` (a backlog run) is
    called once every message is accepted and segmented."""
    sid, token, sender = _bench_sender()
    click.echo(f"bench: {options.count} messages, {options.concurrency} clients, "
               f"rate {options.rate or 'unlimited'}/s, sender {sender}")  # fmt: skip
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
    }
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
    click.echo(json.dumps(report))
    return report


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
    ``backlog`` leaves the carrier workers to ``Spawned.start_carriers``."""
    settings = get_settings()
    env = {
        **os.environ,
        "MYCPAAS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MYCPAAS_CARRIER_URL": f"http://127.0.0.1:{sim_port}",
        "MYCPAAS_API_RATE_LIMIT_PER_S": "0",
        "MYCPAAS_LOG_LEVEL": settings.log_level if settings.log_level != "INFO" else "WARNING",
    }
    sim = ["carrier-sim", "--port", str(sim_port), "--latency-ms", str(latency_ms)]
    if carrier == "smpp":
        smpp_port = sim_port + 1
        env |= {"MYCPAAS_CARRIER": "smpp", "MYCPAAS_SMPP_HOST": "127.0.0.1",
                "MYCPAAS_SMPP_PORT": str(smpp_port)}  # fmt: skip
        sim += ["--smpp-port", str(smpp_port)]
    me = [sys.executable, "-m", "dispatcher.cli"]
    commands = [
        [*me, *sim],
        [*me, "serve", "--port", str(port), "--workers", "2"],
        [*me, "worker", "-Q", "segment"],
        [*me, "worker", "-Q", "maintenance"],
        [*me, "beat", "--schedule-file", f"/tmp/mycpaas-bench-beat-{os.getpid()}"],
    ]
    threads = ["-c", str(carrier_threads)] if carrier_threads else []
    carrier_workers = [
        [*me, "worker", "-Q", "carrier", *threads, "-n", f"carrier{n}-{os.getpid()}@%h"]
        for n in range(carriers)
    ]
    procs = [subprocess.Popen(command, env=env, start_new_session=True) for command in commands]

    def start_carriers() -> None:
        procs.extend(subprocess.Popen(command, env=env, start_new_session=True)
                     for command in carrier_workers)  # fmt: skip
        time.sleep(2)  # they connect to the broker (and bind)

    if not backlog:
        start_carriers()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for url in (f"http://127.0.0.1:{sim_port}/healthz", f"http://127.0.0.1:{port}/healthz"):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise click.ClickException(f"{url} did not come up")
                time.sleep(0.2)
        time.sleep(2)  # workers connect to the broker
        yield Spawned(f"http://127.0.0.1:{port}", None if not backlog else start_carriers)
    finally:
        # The simulator last: workers unbind from it and hand their receipts in first.
        for group in (procs[1:], procs[:1]):
            for proc in group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
