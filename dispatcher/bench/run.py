"""``mycpaas bench``: drive messages through the real API, time them to sent and delivered.

It creates a bench account and a fast sender in the database, sends ``-n`` messages
with ``-c`` concurrent clients (optionally paced to ``--rate`` per second), waits until every
message is delivered or failed, and reports throughput and latency percentiles from acceptance
(``date_created``) to ``date_sent`` and to delivery. ``--spawn`` starts the whole platform
(API, simulator, workers, beat) itself on a scratch store of its own (a database created next
to the configured Postgres, or a SQLite file), so one command measures everything on one
machine and leaves nothing behind. ``--callbacks`` gives every message a ``StatusCallback`` on
one local receiver (:mod:`dispatcher.bench.sink`) and reports when the last callback arrived.

The run is here; the load it drives is in load.py, the platform ``--spawn`` starts in
platform.py, and what it reports in report.py.
"""

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import replace

import click
import httpx
from sqlalchemy import func, select

from dispatcher.bench import cputime
from dispatcher.bench.load import Options, send_all
from dispatcher.bench.report import (
    Run,
    await_sink,
    callbacks_report,
    carrier_rate,
    owed_callbacks,
    report,
    sent_by,
    timings,
)
from dispatcher.intake.accounts import add_number, create_account
from schemas.db import session_scope
from schemas.models import messages_table

POLL_S = 0.5
m = messages_table.c


def bench_sender() -> tuple[str, str, str]:
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


def _progress(account_sid: str, sender: str) -> tuple[int, int]:
    with session_scope() as session:
        settled = func.count().filter(m.status.in_(["delivered", "failed"]))
        row = session.execute(
            select(func.count(), settled).where(sent_by(account_sid, sender))
        ).one()
    return int(row[0]), int(row[1])


def _wait_settled(account_sid: str, sender: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        total, done = _progress(account_sid, sender)
        if done >= total:
            return
        time.sleep(POLL_S)


def _warm_up(api: str, options: Options) -> None:
    """Send ``options.warmup`` messages at the run's pace, from a sender of their own, and wait
    until each settled and its callbacks arrived: the processes' first statements, connections
    and threads are then made, and no figure of the run counts them."""
    sid, token, sender = bench_sender()
    click.echo(f"warm-up: {options.warmup} messages at the run's pace, left out of its figures")
    asyncio.run(send_all(api, sid, token, sender, replace(options, count=options.warmup)))
    deadline = time.monotonic() + options.timeout_s
    _wait_settled(sid, sender, deadline)
    if options.callback_url:
        sink = options.callback_url.rsplit("/", 1)[0]
        await_sink(f"{sink}/stats", owed_callbacks(sid), deadline)
        httpx.get(f"{sink}/reset", timeout=5)


def _wait_segmented(account_sid: str, sender: str, deadline: float) -> None:
    """Until none of the sender's messages waits for segmentation."""
    while time.monotonic() < deadline:
        with session_scope() as session:
            waiting = session.execute(
                select(func.count()).where(sent_by(account_sid, sender), m.stage == "segment")
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
    if options.warmup:
        _warm_up(api, options)
    sid, token, sender = bench_sender()
    how = f"bulk creates of {options.bulk}" if options.bulk else "one create per message"
    click.echo(f"bench: {options.count} messages, {options.concurrency} clients, {how}, "
               f"rate {options.rate or 'unlimited'} requests/s, sender {sender}")  # fmt: skip
    measure_cpu = sessions is not None and cputime.available()
    reference_before = cputime.reference_ms() if measure_cpu else None
    cpu_before = cputime.snapshot(sessions or {}) if measure_cpu else {}
    started = time.monotonic()
    request_latencies = asyncio.run(send_all(api, sid, token, sender, options))
    accepted_s = time.monotonic() - started
    if start_carriers is not None:
        _wait_segmented(sid, sender, time.monotonic() + options.timeout_s)
        click.echo("backlog: every message accepted and segmented; starting the carrier workers")
        start_carriers()
    deadline = time.monotonic() + options.timeout_s
    _wait_settled(sid, sender, deadline)
    finished_s = time.monotonic() - started
    settled = timings(sid, sender)
    sink = options.callback_url
    callbacks = callbacks_report(sid, sender, sink, deadline) if sink else {}
    cpu = cputime.spent(cpu_before, cputime.snapshot(sessions or {})) if measure_cpu else {}
    reference = None if reference_before is None else (reference_before, cputime.reference_ms())
    return report(Run(options, request_latencies, accepted_s, finished_s, settled, callbacks, cpu,
                      carrier_rate(sid, sender), reference))  # fmt: skip
