"""``mycpaas queues``: the numbers of /metrics for a person at a terminal."""

import time
from datetime import UTC, datetime

import click

from schemas.db import session_scope
from workers import backlog
from workers.carriers import connectivity
from workers.carriers import health as carrier_health

COLUMNS = ("stage", "queue", "depth", "oldest", "scheduled", "in-flight", "rate/s")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render() -> str:
    with session_scope() as session:
        stages = backlog.snapshot(session)
        statuses = backlog.messages_by_status(session)
        refusal = carrier_health.current(session)
        states = connectivity.current(session)
    broker = backlog.broker_depths()
    rows = [COLUMNS] + [
        (s.stage, s.queue, str(s.depth), _age(s.oldest_s), str(s.scheduled), str(s.in_flight),
         f"{s.rate_per_s:.1f}")
        for s in stages
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    waiting = "unreachable" if broker is None else ", ".join(f"{q} {n}" for q, n in broker.items())
    counts = ", ".join(f"{status} {n}" for status, n in sorted(statuses.items())) or "none"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "\n".join([stamp, *lines, "", f"wake-ups in the broker: {waiting}",
                      f"messages: {counts}", f"carrier: {_carrier(refusal, states)}"])  # fmt: skip


def _carrier(refusal: str | None, states: list[connectivity.LinkState]) -> str:
    """``default up`` per connection, or why not; the credentials first."""
    if refusal is not None:
        return f"REFUSES OUR CREDENTIALS since {refusal}"
    if not states:
        return "no report from a carrier worker"
    down = connectivity.down(states)
    names = sorted({state.connection for state in states})
    return ", ".join(
        f"{name} {connectivity.describe(down[name])}" if name in down else f"{name} up"
        for name in names
    )


def show(watch: bool, interval_s: float) -> None:
    if not watch:
        click.echo(render())
        return
    try:
        while True:
            text = render()
            click.clear()
            click.echo(text)
            time.sleep(interval_s)
    except KeyboardInterrupt:
        pass
