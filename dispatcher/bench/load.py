"""The load ``mycpaas bench`` drives: ``-n`` creates from ``-c`` concurrent clients, one message
each or in bulk, optionally paced to ``--rate`` requests per second."""

import asyncio
import itertools
import time
from dataclasses import dataclass

import click
import httpx


@dataclass(frozen=True)
class Options:
    """One run's load, and how long it waits for the messages to settle."""

    count: int
    concurrency: int
    rate: float | None
    timeout_s: float
    callback_url: str | None = None  # every message's StatusCallback (a sink's), or none
    bulk: int = 0  # messages per bulk create (POST …/Messages/Bulk); 0: one create per message
    segments: int = 1  # GSM-7 parts per message (153 characters each past the first 160)
    warmup: int = 0  # messages sent first at the same pace, settled, and left out of every figure


def body(index: int, segments: int) -> str:
    """A GSM-7 body of ``segments`` parts."""
    text = f"bench message {index}"
    if segments <= 1:
        return text
    return text.ljust(153 * (segments - 1) + 10, "x")


async def send_all(api: str, sid: str, token: str, sender: str, options: Options) -> list[float]:
    """POST every message; returns the request latencies in seconds."""
    latencies: list[float] = []
    next_slot = 0.0  # when the next request may go, once the clients are made
    remaining = iter(range(options.count))
    # One single-connection client per simulated client: httpcore's shared async pool spends
    # more CPU assigning requests to connections than the requests cost, past a few dozen.
    limits = httpx.Limits(max_connections=1)

    def params(index: int) -> dict[str, str]:
        data = {"To": f"+1202555{index % 10000:04d}", "From": sender,
                "Body": body(index, options.segments)}  # fmt: skip
        if options.callback_url:
            data["StatusCallback"] = options.callback_url
        return data

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal next_slot
        async with client:
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

    # Every client is made before the first slot: making one loads the CA bundle (tens of ms),
    # and slots that passed meanwhile would go out together, a burst in a paced run.
    clients = [
        httpx.AsyncClient(base_url=api, auth=(sid, token), limits=limits, timeout=60)
        for _ in range(options.concurrency)
    ]
    next_slot = time.monotonic()
    await asyncio.gather(*(client_loop(client) for client in clients))
    return latencies
