"""CPU an idle platform uses: every process of ``mycpaas bench --spawn`` up, nothing to send.

    uv run python scripts/bench_idle.py --seconds 60 --carrier smpp

Starts the platform on a scratch store (as the bench does), lets it settle, then prints the
CPU each part used over ``--seconds``, as a share of one core (Postgres and Redis: everything
they served meanwhile).
"""

import time

import click

from dispatcher.bench import cputime
from dispatcher.bench.platform import scratch_store, spawned_platform
from dispatcher.bench.stored import fill_store


@click.command()
@click.option("--seconds", default=60.0, show_default=True, help="How long to measure.")
@click.option("--settle", default=10.0, show_default=True, help="Seconds to wait first.")
@click.option("--carrier", type=click.Choice(["simulator", "smpp"]), default="smpp")
@click.option("--port", default=8000, show_default=True, help="The API's port (and +100).")
@click.option("--stored", default=0, show_default=True, help="Settled messages stored first.")
def main(seconds: float, settle: float, carrier: str, port: int, stored: int) -> None:
    with scratch_store():
        if stored:
            fill_store(stored)
        with spawned_platform(port, port + 100, 20.0, 1, carrier) as spawned:
            time.sleep(settle)
            before = cputime.snapshot(spawned.sessions)
            time.sleep(seconds)
            spent = cputime.spent(before, cputime.snapshot(spawned.sessions))
    total = sum(spent.values())
    parts = "  ".join(
        f"{part} {100 * cpu / seconds:.2f}"
        for part, cpu in sorted(spent.items(), key=lambda p: -p[1])
    )
    click.echo(f"idle       {100 * total / seconds:.2f}% of one core over {seconds:.0f} s: {parts}")


if __name__ == "__main__":
    main()
