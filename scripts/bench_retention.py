"""How fast a retention pass removes messages from a full store.

    MYCPAAS_DATABASE_URL=postgresql://… uv run python scripts/bench_retention.py --stored 200000

A scratch store (beside the configured Postgres) gets ``--stored`` settled messages spread over
the last 30 days, each with a segment and its receipt, three events, three callbacks and their
attempts (``mycpaas bench --stored``'s fill); their account's retention is set to 15 days, and
one pass removes the older half. Prints messages and rows removed per second.
"""

import time

import click
from sqlalchemy import update

from dispatcher.bench.platform import scratch_store
from dispatcher.bench.stored import fill_store
from schemas.db import session_scope
from schemas.models import accounts_table
from workers import retention


@click.command()
@click.option("--stored", default=200_000, show_default=True)
@click.option("--days", default=15, show_default=True, help="The account's retention.")
def main(stored: int, days: int) -> None:
    with scratch_store():
        fill_store(stored)
        with session_scope() as session:
            a = accounts_table.c
            session.execute(update(accounts_table).where(a.friendly_name == "stored")
                            .values(retention_days=days))  # fmt: skip
            session.commit()
        dry = retention.run(dry_run=True)
        due = sum(dry.removed.values())
        started = time.monotonic()
        done = retention.run()
        took = time.monotonic() - started
        removed = sum(done.removed.values())
        rows = removed * 12  # the message, its segment, receipt, 3 events, 3 callbacks, 3 attempts
        rate, row_rate = removed / took, rows / took
        click.echo(f"retention: {removed:,} of {stored:,} messages removed ({due:,} due) in "
                   f"{took:.1f} s: {rate:,.0f} messages/s, {row_rate:,.0f} rows/s")  # fmt: skip


if __name__ == "__main__":
    main()
