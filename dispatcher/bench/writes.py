"""What a ``mycpaas bench --spawn`` run made Postgres write: row versions per message, table by
table (inserts, updates and deletes, from ``pg_stat_user_tables``), and the bytes on disk the
run added per message (each table with its indexes and TOAST, after a VACUUM: what a store keeps
for a message once autovacuum has caught up).

Read once before the run and once after the platform's processes have exited (until two reads
agree): a backend reports its counts only every so often while it lives, and in full as it
exits. On SQLite there is nothing to read.
"""

import time

import click
import psycopg

from dispatcher.bench.platform import postgres_store
from schemas.db import dispose_engine

SETTLE_S, SETTLE_READS = 0.5, 10  # exiting backends report within a moment: read until still
COUNTS = "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
SIZES = "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"


def table_bytes() -> dict[str, int] | None:
    """Bytes on disk per table (with indexes and TOAST), after a VACUUM; None on SQLite."""
    store = postgres_store()
    if store is None:
        return None
    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute("VACUUM")
        return {name: int(size) for name, size in conn.execute(SIZES)}


def report_bytes(before: dict[str, int] | None, messages: int) -> None:
    """One line: the bytes on disk the run added per message, in all and per table."""
    after = table_bytes()
    if before is None or after is None or not messages:
        return
    grew = {name: (size - before.get(name, 0)) / messages for name, size in after.items()
            if size > before.get(name, 0)}  # fmt: skip
    tables = sorted(grew.items(), key=lambda item: -item[1])
    click.echo(
        f"bytes      {sum(grew.values()):,.0f} bytes on disk per message: "
        + "  ".join(f"{name} {size:,.0f}" for name, size in tables if size >= 1)
    )


def row_versions() -> dict[str, int] | None:
    """Rows written so far per table of the store this process points at; None on SQLite."""
    store = postgres_store()
    if store is None:
        return None
    with psycopg.connect(store, autocommit=True) as conn:
        return {name: int(count) for name, count in conn.execute(COUNTS)}


def report_writes(before: dict[str, int] | None, messages: int) -> None:
    """One line: the row versions per message the run wrote, in all and per table."""
    dispose_engine()  # this process's own connections report what they wrote as they close
    after = row_versions()
    if before is None or after is None or not messages:
        return
    for _ in range(SETTLE_READS):
        time.sleep(SETTLE_S)
        again = row_versions() or {}
        if again == after:
            break
        after = again
    per_table = {
        name: (count - before.get(name, 0)) / messages
        for name, count in after.items()
        if count > before.get(name, 0)
    }
    tables = sorted(per_table.items(), key=lambda item: -item[1])
    click.echo(
        f"writes     {sum(per_table.values()):.1f} row versions per message: "
        + "  ".join(f"{name} {count:.2f}" for name, count in tables if count >= 0.005)
    )
