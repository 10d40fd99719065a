"""What ``mycpaas bench`` reports: throughput and latency percentiles from acceptance
(``date_created``) to ``date_sent`` and to delivery, read from the store once the run settled,
with the callbacks' arrivals and each part's CPU; as one JSON object and a few lines for a person.
"""

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import click
import httpx
from sqlalchemy import ColumnElement, func, select

from dispatcher.bench.load import Options
from schemas.db import session_scope
from schemas.models import (
    callback_attempts_table,
    callbacks_table,
    message_events_table,
    messages_table,
    segments_table,
)

SINK_POLL_S = 0.1  # the sink's stats are one small GET: ask often, stop soon after the last
m = messages_table.c


@dataclass(frozen=True)
class Timings:
    """Each message's way through the platform, from acceptance, in seconds."""

    to_sent: list[float]
    to_delivered: list[float]
    statuses: dict[str, int]  # messages per final status


@dataclass(frozen=True)
class Run:
    """What one run measured, gathered in the order the run took it."""

    options: Options
    request_latencies: list[float]  # each create request's, in seconds
    accepted_s: float  # from the first create to the last accepted
    finished_s: float  # from the first create to every message settled (or the timeout)
    timings: Timings
    callbacks: dict[str, object]  # callbacks_report's, or empty without callbacks
    cpu: dict[str, float]  # part name → CPU seconds, or empty when not measured
    carrier_rate: float | None  # segments per second the carrier took
    reference_ms: tuple[float, float] | None = None  # cputime.reference_ms before and after


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sent_by(account_sid: str, sender: str) -> ColumnElement[bool]:
    """The run's messages, through the (account, sender) index: the store may hold millions."""
    return (m.account_sid == account_sid) & (m.from_number == sender)


def carrier_rate(account_sid: str, sender: str) -> float | None:
    """Segments per second the carrier took, from the first submission to the last."""
    s = segments_table.c
    with session_scope() as session:
        count, first, last = session.execute(
            select(func.count(), func.min(s.date_submitted), func.max(s.date_submitted))
            .join(messages_table, m.sid == s.message_sid)
            .where(sent_by(account_sid, sender), s.date_submitted.is_not(None))
        ).one()
    if not count or first is None or last is None or last <= first:
        return None
    return float(count) / (last - first).total_seconds()


def timings(account_sid: str, sender: str) -> Timings:
    e = message_events_table.c
    with session_scope() as session:
        rows = session.execute(
            select(m.status, m.date_created, m.date_sent, e.date_created)
            .select_from(messages_table.outerjoin(
                message_events_table, (e.message_sid == m.sid) & (e.status == "delivered")))
            .where(sent_by(account_sid, sender))
        ).all()  # fmt: skip
    to_sent = [(sent - created).total_seconds() for _s, created, sent, _d in rows if sent]
    to_delivered = [(done - created).total_seconds() for _s, created, _t, done in rows if done]
    statuses: dict[str, int] = {}
    for status, *_ in rows:
        statuses[status] = statuses.get(status, 0) + 1
    return Timings(to_sent, to_delivered, statuses)


def callbacks_report(
    account_sid: str, sender: str, callback_url: str, deadline: float
) -> dict[str, object]:
    """Wait until the sink has every callback the run owes; when did the last one arrive?"""
    stats_url = callback_url.rsplit("/", 1)[0] + "/stats"
    c = callbacks_table.c
    e = message_events_table.c
    owed = owed_callbacks(account_sid)
    with session_scope() as session:
        last_terminal = session.execute(
            select(func.max(e.date_created))
            .join(messages_table, m.sid == e.message_sid)
            .where(sent_by(account_sid, sender), e.status.in_(["delivered", "failed"]))
        ).scalar_one()
    stats = await_sink(stats_url, owed, deadline)
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
    arrivals = _callback_arrivals(account_sid)
    return {
        **{
            f"{status}_callback_{name}_ms": round(percentile(waits, fraction) * 1000, 1)
            for status, waits in arrivals.items()
            for name, fraction in (("p50", 0.5), ("p99", 0.99))
        },
        "callbacks_owed": owed,
        "callbacks_received": stats["count"],
        "callbacks_by_status": stats["by_status"],
        "callbacks_per_s": round(stats["count"] / span, 1) if span > 0 else None,
        "callbacks_after_last_terminal_s": round(after, 2) if after is not None else None,
        "callback_attempts_failed": failed_attempts,
    }


def owed_callbacks(account_sid: str) -> int:
    with session_scope() as session:
        owed = session.execute(
            select(func.count()).where(callbacks_table.c.account_sid == account_sid)
        )
        return int(owed.scalar_one())


def await_sink(stats_url: str, owed: int, deadline: float) -> dict[str, Any]:
    """The sink's stats once it has ``owed`` callbacks (or the deadline passed)."""
    while True:
        stats: dict[str, Any] = httpx.get(stats_url, timeout=5).json()
        if stats["count"] >= owed or time.monotonic() > deadline:
            return stats
        time.sleep(SINK_POLL_S)


def _callback_arrivals(account_sid: str) -> dict[str, list[float]]:
    """Per status, seconds from each message's acceptance to its callback's answered POST
    (the attempt's start and its latency): when the customer's receiver had it, at the latest."""
    a, c = callback_attempts_table.c, callbacks_table.c
    waits: dict[str, list[float]] = {"sent": [], "delivered": []}
    with session_scope() as session:
        rows = session.execute(
            select(c.status, a.date_attempted, a.latency_ms, m.date_created)
            .join(callbacks_table, c.id == a.callback_id)
            .join(messages_table, m.sid == c.message_sid)
            .where(c.account_sid == account_sid, c.status.in_(list(waits)),
                   a.status_code.between(200, 299))
        ).all()  # fmt: skip
    for status, attempted, latency_ms, accepted in rows:
        waits[status].append((attempted - accepted).total_seconds() + latency_ms / 1000)
    return {status: values for status, values in waits.items() if values}


def report(run: Run) -> dict[str, object]:
    """The run's figures as one JSON object, printed after a few lines that say them."""
    options, to_sent, to_delivered = run.options, run.timings.to_sent, run.timings.to_delivered
    ms = 1000.0
    figures: dict[str, object] = {
        "messages": options.count,
        "concurrency": options.concurrency,
        "rate_limit_per_s": options.rate,
        "statuses": run.timings.statuses,
        "intake_per_s": round(options.count / run.accepted_s, 1),
        "intake_p50_ms": round(percentile(run.request_latencies, 0.5) * ms, 1),
        "intake_p99_ms": round(percentile(run.request_latencies, 0.99) * ms, 1),
        "end_to_end_per_s": round(options.count / run.finished_s, 1),
        "carrier_segments_per_s": round(run.carrier_rate, 1) if run.carrier_rate else None,
        "sent_p50_ms": round(percentile(to_sent, 0.5) * ms, 1),
        "sent_p95_ms": round(percentile(to_sent, 0.95) * ms, 1),
        "sent_p99_ms": round(percentile(to_sent, 0.99) * ms, 1),
        "delivered_p50_ms": round(percentile(to_delivered, 0.5) * ms, 1),
        "delivered_p95_ms": round(percentile(to_delivered, 0.95) * ms, 1),
        "delivered_p99_ms": round(percentile(to_delivered, 0.99) * ms, 1),
        "delivered_mean_ms": round(statistics.fmean(to_delivered) * ms, 1)
        if to_delivered
        else None,
        "wall_s": round(run.finished_s, 2),
        **run.callbacks,
    }
    if run.reference_ms:
        figures["reference_ms"] = list(run.reference_ms)
    if run.cpu:
        figures["cpu_s"] = run.cpu
        figures["cpu_ms_per_message"] = round(sum(run.cpu.values()) * 1000 / options.count, 2)
    _say(run, figures)
    click.echo(json.dumps(figures))
    return figures


def _say(run: Run, figures: dict[str, object]) -> None:
    """The figures for a person, a line per stage."""
    statuses, callbacks = run.timings.statuses, run.callbacks
    click.echo(
        "\n".join(
            [
                f"accepted   {run.options.count} in {run.accepted_s:.2f} s = "
                f"{figures['intake_per_s']}/s (request p50 {figures['intake_p50_ms']} ms, "
                f"p99 {figures['intake_p99_ms']} ms)",
                f"terminal   {sum(statuses.values())} in {run.finished_s:.2f} s = "
                f"{figures['end_to_end_per_s']}/s  {statuses}",
                f"carrier    {figures['carrier_segments_per_s']} segments/s, first to last "
                "hand-off",
                f"to sent      p50 {figures['sent_p50_ms']} ms  p95 {figures['sent_p95_ms']} ms  "
                f"p99 {figures['sent_p99_ms']} ms",
                f"to delivered p50 {figures['delivered_p50_ms']} ms  p95 "
                f"{figures['delivered_p95_ms']} ms  p99 {figures['delivered_p99_ms']} ms",
            ]
        )
    )
    if callbacks:
        click.echo(
            f"callbacks  {callbacks['callbacks_received']} of {callbacks['callbacks_owed']} "
            f"received at {callbacks['callbacks_per_s']}/s, the last "
            f"{callbacks['callbacks_after_last_terminal_s']} s after the last message settled"
        )
        if "sent_callback_p99_ms" in callbacks:
            click.echo(
                f"to callback  sent p50 {callbacks['sent_callback_p50_ms']} ms  p99 "
                f"{callbacks['sent_callback_p99_ms']} ms; delivered p50 "
                f"{callbacks.get('delivered_callback_p50_ms')} ms  p99 "
                f"{callbacks.get('delivered_callback_p99_ms')} ms (acceptance to the answered POST)"
            )
    if run.cpu:
        parts = "  ".join(
            f"{name} {seconds * 1000 / run.options.count:.2f}"
            for name, seconds in sorted(run.cpu.items(), key=lambda item: -item[1])
        )
        click.echo(f"cpu        {figures['cpu_ms_per_message']} ms per message: {parts} "
                   "(postgres and redis-server: everything they served meanwhile)")  # fmt: skip
    if run.reference_ms:
        before, after = run.reference_ms
        click.echo(f"machine    reference loop {before} ms before the run, {after} ms after "
                   "(compare CPU per message only between runs of similar times)")  # fmt: skip
