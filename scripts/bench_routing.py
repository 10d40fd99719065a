"""How long the router takes to choose a connection, with 100 routes of which the message
matches the last (the worst case: every rule is tried).

    uv run python scripts/bench_routing.py [--messages 200000]

Three tables: prefix rules only; prefix rules with an account and a kind condition; and
country rules (a number's country is looked up once per number and cached, so a run sends to
``--numbers`` distinct numbers).
"""

import random
import time

import click

from schemas.carriers import Connection, Route
from workers.carriers.routing import Message, Router

CONNECTIONS = {
    name: Connection(name, "http", {"url": "http://127.0.0.1:1"}, frozenset({"sms", "mms"}))
    for name in ("a", "b", "c")
}


def tables() -> dict[str, tuple[Route, ...]]:
    last = Route("catch-all", mode="failover", connections=("a", "b"))
    prefixes = tuple(
        Route(f"p{n}", prefixes=(f"+9{n:02d}",), mode="weighted", connections=("a", "b"),
              weights=(3, 1))
        for n in range(99)
    )  # fmt: skip
    conditions = tuple(
        Route(f"c{n}", prefixes=(f"+1{n:02d}", f"+2{n:02d}"), kind="sms",
              accounts=frozenset({f"AC{n:032d}"}), mode="carrier", connections=("c",))
        for n in range(99)
    )  # fmt: skip
    countries = tuple(
        Route(f"k{n}", countries=frozenset({code}), mode="carrier", connections=("c",))
        for n, code in enumerate(["FR", "IT", "ES", "NL", "BE", "AT", "CH", "PL", "SE"] * 11)
    )[:99]  # fmt: skip
    return {"prefix": (*prefixes, last), "conditions": (*conditions, last),
            "country": (*countries, last)}  # fmt: skip


@click.command()
@click.option("--messages", default=200_000, show_default=True)
@click.option("--numbers", default=10_000, show_default=True, help="Distinct recipients.")
def main(messages: int, numbers: int) -> None:
    recipients = [f"+4915{random.randrange(10**8, 10**9)}" for _ in range(numbers)]
    batch = [Message(recipients[n % numbers], "+15005550006", False, "AC1")
             for n in range(messages)]  # fmt: skip
    for name, routes in tables().items():
        router = Router(CONNECTIONS, routes)
        started = time.perf_counter()
        for message in batch:
            router.choose(message)
        took = time.perf_counter() - started
        click.echo(f"{name:10} 100 routes: {took / messages * 1e6:.2f} µs per message "
                   f"({messages:,} messages, {numbers:,} recipients)")  # fmt: skip


if __name__ == "__main__":
    main()
