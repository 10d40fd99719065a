"""``mycpaas bench --inbound``: handsets text the platform; how many messages a second reach the
customer's webhook, and what each costs.

The simulator's SMSC originates ``-n`` messages (``POST /mo``, from ``-c`` concurrent clients,
optionally paced to ``--rate``) as ``deliver_sm`` on the carrier workers' binds. Each is stored
before it is answered, joined into an inbound message by the inbound stage and POSTed to the
bench number's ``SmsUrl``: the ``--callbacks`` sink, which answers 200 with an empty body (no
reply). The run ends when the sink has every webhook; it reports MO per second from the first
``POST /mo`` to the last webhook's arrival, and the CPU each process spent per MO.
"""

import asyncio
import json
import time

import click
import httpx
from sqlalchemy import func, select, update

from dispatcher.bench import cputime
from dispatcher.bench.load import Options
from dispatcher.bench.report import percentile
from dispatcher.bench.run import bench_sender
from schemas.db import session_scope
from schemas.models import messages_table, phone_numbers_table

POLL_S = 0.2
HANDSETS = 1000  # distinct senders the MO come from


def _bench_number(webhook: str) -> tuple[str, str]:
    """A fresh account and number whose SmsUrl is the sink."""
    account, _, number = bench_sender()
    with session_scope() as session:
        session.execute(
            update(phone_numbers_table)
            .where(phone_numbers_table.c.phone_number == number).values(sms_url=webhook)
        )  # fmt: skip
        session.commit()
    return account, number


async def _originate(sim: str, number: str, options: Options) -> list[float]:
    """POST every MO to the simulator; returns the request latencies in seconds."""
    remaining = iter(range(options.count))
    next_slot = time.monotonic()
    latencies: list[float] = []

    async def client_loop() -> None:
        nonlocal next_slot
        async with httpx.AsyncClient(base_url=sim, timeout=60) as client:
            for index in remaining:
                if options.rate:
                    slot, next_slot = next_slot, max(next_slot, time.monotonic()) + 1 / options.rate
                    await asyncio.sleep(max(0.0, slot - time.monotonic()))
                started = time.monotonic()
                handset = f"+1202555{index % HANDSETS:04d}"
                answer = await client.post("/mo", json={
                    "from": handset, "to": number, "body": f"bench mo {index}",
                    "via": "smpp"})  # fmt: skip
                if answer.status_code != 200:
                    raise click.ClickException(f"/mo answered {answer.status_code}: {answer.text}")
                latencies.append(time.monotonic() - started)

    await asyncio.gather(*(client_loop() for _ in range(options.concurrency)))
    return latencies


def run_inbound(sim: str, options: Options, sessions: dict[str, int]) -> dict[str, object]:
    """Drive the MO, wait for every webhook, report."""
    assert options.callback_url is not None
    stats_url = options.callback_url.rsplit("/", 1)[0] + "/stats"
    account, number = _bench_number(options.callback_url)
    click.echo(f"bench --inbound: {options.count} MO to {number} over SMPP, "
               f"{options.concurrency} clients, rate {options.rate or 'unlimited'}/s")  # fmt: skip
    measure_cpu = cputime.available()
    cpu_before = cputime.snapshot(sessions) if measure_cpu else {}
    before = httpx.get(stats_url, timeout=5).json()["count"]
    started_at = time.time()
    latencies = asyncio.run(_originate(sim, number, options))
    originated_s = time.time() - started_at
    deadline = time.monotonic() + options.timeout_s
    while True:
        stats = httpx.get(stats_url, timeout=5).json()
        if stats["count"] - before >= options.count or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    cpu = cputime.spent(cpu_before, cputime.snapshot(sessions)) if measure_cpu else {}
    smsc = httpx.get(f"{sim}/counters", timeout=5).json()["smpp"]
    arrived = stats["count"] - before
    elapsed_s = (stats["last_at"] or time.time()) - started_at
    m = messages_table.c
    with session_scope() as session:
        stored = session.execute(
            select(func.count()).where(m.account_sid == account, m.direction == "inbound")
        ).scalar_one()
    figures: dict[str, object] = {
        "mo": options.count,
        "originated_per_s": round(options.count / originated_s, 1),
        "mo_p99_request_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "inbound_messages": stored,
        "webhooks": arrived,
        "deliver_sm_sent": smsc.get("mo_sent", 0),  # more than "mo": sent again, unanswered
        "deliver_sm_refused": smsc.get("mo_refused", 0),
        "end_to_end_per_s": round(arrived / elapsed_s, 1) if elapsed_s > 0 else None,
    }
    if cpu:
        figures["cpu_s"] = cpu
        figures["cpu_ms_per_mo"] = round(sum(cpu.values()) * 1000 / options.count, 2)
    click.echo(f"inbound    {stored} messages stored, {arrived} of {options.count} webhooks "
               f"in {elapsed_s:.1f} s: {figures['end_to_end_per_s']} MO/s end to end "
               f"(originated at {figures['originated_per_s']}/s); the SMSC sent "
               f"{figures['deliver_sm_sent']} deliver_sm, {figures['deliver_sm_refused']} "
               "refused")  # fmt: skip
    if cpu:
        parts = ", ".join(
            f"{name} {seconds * 1000 / options.count:.2f}"
            for name, seconds in sorted(cpu.items(), key=lambda item: -item[1])
        )
        click.echo(f"cpu        {figures['cpu_ms_per_mo']} ms per MO: {parts}")
    click.echo(json.dumps(figures))
    if arrived < options.count:
        raise click.ClickException(f"only {arrived} of {options.count} webhooks arrived in time")
    return figures
