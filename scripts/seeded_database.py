"""The Messages API benchmarks' own database, seeded with COPY, or an earlier run's reused.

The database ``--db-name`` is dropped and re-created on the server of ``--database-url``,
migrated, and given one account and one sender number with ``dispatcher.intake.accounts``; then
``--rows`` messages go in with ``COPY ... FREEZE`` (the secondary indexes are dropped for the
load and re-created from their own definitions), followed by ``VACUUM (ANALYZE)``. With
``--keep`` an earlier run's database is reused when its tables still match the models and it
holds at least ``--rows`` messages.

Nothing of the project is imported at module level: the project reads its settings once, from
the environment, which the benchmark sets first.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ACCOUNT_NAME = "bench"
SENDER = "+4915799990000"
TO_NUMBERS = 1000
SPREAD = timedelta(days=30)
MESSAGE_COLUMNS = (
    "sid", "account_sid", "to", "from_number", "body", "status", "direction", "num_segments",
    "num_media", "encoding", "smart_encoded", "media_urls", "status_callback",
    "validity_period_s", "expires_at", "error_code", "error_message", "idempotency_key",
    "idempotency_fingerprint", "stage", "next_attempt_at", "attempts", "date_created",
    "date_updated", "date_sent",
)  # fmt: skip
SEED_CHUNK_ROWS = 50_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def open_database(
    admin_url: str, name: str, rows: int, seed: int, keep: bool
) -> tuple[tuple[str, str, str], dict[str, float]]:
    """The migrated bench database's account ``(sid, token, sender)``, and the seeding's timings
    (empty when an earlier run's database was reused)."""
    from schemas.db import dispose_engine
    from schemas.migrate import upgrade

    db_url = with_database(admin_url, name)
    credentials = None
    if keep and database_exists(admin_url, name):
        upgrade(db_url)
        if schema_matches(db_url):
            credentials = reuse_account()
        if credentials is not None and count_messages(db_url, credentials[0]) < rows:
            credentials = None  # seeded with fewer rows than asked for
        print(f"reusing {name}" if credentials else "cannot reuse the database; seeding")
    if credentials is not None:
        return credentials, {}
    dispose_engine()  # its pooled connections die with the dropped database
    create_database(admin_url, name)
    upgrade(db_url)
    credentials = make_account()
    print(f"seeding {rows:,} messages into {name} with COPY ...", flush=True)
    seeding = seed_messages(db_url, credentials[0], credentials[2], rows, seed)
    rate = rows / max(seeding["total_s"], 1e-9)
    print(f"seeded in {seeding['total_s']:.1f} s ({rate:,.0f} rows/s): {seeding}")
    return credentials, seeding


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def to_numbers() -> list[str]:
    """A fixed set of distinct, valid German mobile numbers (+49 151 …)."""
    return [f"+49151{10_000_000 + k * 7919:08d}" for k in range(TO_NUMBERS)]


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def make_account() -> tuple[str, str, str]:
    """A new account and sender number, made with the project's own functions."""
    from dispatcher.intake.accounts import add_number, create_account
    from schemas.db import session_scope

    with session_scope() as session:
        account, token = create_account(session, ACCOUNT_NAME)
        number = add_number(session, account.sid, SENDER)
    return account.sid, token, number.phone_number


def reuse_account() -> tuple[str, str, str] | None:
    """The seeded account of an earlier run, with a new token (only its hash is stored)."""
    from sqlmodel import select

    from dispatcher.intake.accounts import rotate_token
    from schemas.db import session_scope
    from schemas.models import Account, PhoneNumber

    with session_scope() as session:
        account = session.exec(select(Account).where(Account.friendly_name == ACCOUNT_NAME)).first()
        if account is None:
            return None
        number = session.exec(
            select(PhoneNumber.phone_number).where(PhoneNumber.account_sid == account.sid)
        ).first()
        if number is None:
            return None
        token = rotate_token(account)
        session.add(account)
        session.commit()
        return account.sid, token, number


def schema_matches(url: str) -> bool:
    """Whether every table of the models has exactly the model's columns in the database.

    The migrations are edited in place while the project is young, so an old bench database
    can be "at head" and still differ; it is then re-created rather than reused.
    """
    from sqlmodel import SQLModel

    import schemas.inbound  # noqa: F401  (registers the tables)
    import schemas.models  # noqa: F401

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return all(
        found.get(table.name) == {c.name for c in table.columns}
        for table in SQLModel.metadata.sorted_tables
    )


def count_messages(url: str, account: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM messages WHERE account_sid = %s", (account,))
        return int(row.fetchone()[0])  # type: ignore[index]


def _timestamp(micros: int) -> str:
    return (EPOCH + timedelta(microseconds=micros)).isoformat()


def default_columns() -> list[tuple[str, str]]:
    """Columns of the model this script does not know, with their default as COPY text.

    Keeps the seeding working when a column with a plain default is added to the model.
    """
    from pydantic_core import PydanticUndefined

    from schemas.models import Message

    table = Message.__table__  # type: ignore[attr-defined]
    missing = [name for name in MESSAGE_COLUMNS if name not in table.columns]
    if missing:
        raise RuntimeError(f"schemas/models.py has no column {missing}; update MESSAGE_COLUMNS")
    extras = []
    for column in table.columns:
        if column.name in MESSAGE_COLUMNS:
            continue
        model_field = Message.model_fields.get(column.name)
        default = model_field.default if model_field is not None else PydanticUndefined
        if isinstance(default, bool):
            extras.append((column.name, "t" if default else "f"))
        elif isinstance(default, int | float | str):
            extras.append((column.name, str(default)))
        elif default is None and column.nullable:
            extras.append((column.name, "\\N"))
        else:
            raise RuntimeError(f"no seed value for the new column messages.{column.name}")
    return extras


def seed_text(
    rng: random.Random, start: int, stop: int, rows: int, account: str, sender: str,
    numbers: Sequence[str], base_us: int, step_us: int, suffix: str,
) -> str:  # fmt: skip
    """COPY text for rows ``start..stop`` (0 is the oldest). Values carry no tab or backslash."""
    lines = []
    recent = rows - max(1, rows // 100)  # only the newest 1 % can still be in flight
    for i in range(start, stop):
        created = base_us + i * step_us + rng.randrange(max(1, step_us // 2))
        roll = rng.random()
        if i >= recent and roll < 0.30:
            status = "queued" if roll < 0.20 else "sending"
        elif roll < 0.05:
            status = "failed"
        elif roll < 0.10:
            status = "sent"
        else:
            status = "delivered"
        queued = status == "queued"
        sent = created + rng.randrange(200_000, 2_000_000)
        updated = created if queued else sent + rng.randrange(0, 5_000_000)
        failed = status == "failed"
        in_flight = status in ("queued", "sending")
        fields = (
            f"SM{rng.getrandbits(128):032x}",
            account,
            numbers[rng.randrange(len(numbers))],
            sender,
            f"Bench message {i}: your code is {i % 1_000_000:06d}",
            status,
            "outbound-api",
            "1",
            "0",
            "GSM-7",
            "f",
            "[]",
            "\\N",
            "36000",
            _timestamp(created + 36_000_000_000),
            "30003" if failed else "\\N",
            "Unreachable destination handset" if failed else "\\N",
            "\\N",
            "\\N",
            "segment" if queued else ("carrier" if status == "sending" else "done"),
            _timestamp(created + 30_000_000) if in_flight else "\\N",
            "0" if queued else "1",
            _timestamp(created),
            _timestamp(updated),
            "\\N" if queued else _timestamp(sent),
        )
        lines.append("\t".join(fields) + suffix)
    lines.append("")
    return "\n".join(lines)


def seed_messages(url: str, account: str, sender: str, rows: int, seed: int) -> dict[str, float]:
    """COPY ``rows`` messages in; indexes are rebuilt afterwards, then VACUUM (ANALYZE)."""
    timings: dict[str, float] = {}
    rng = random.Random(seed)
    numbers = to_numbers()
    now_us = (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1)
    spread_us = SPREAD // timedelta(microseconds=1)
    step_us = max(2, spread_us // max(rows, 1))
    base_us = now_us - step_us * rows - 60_000_000  # the newest row is a minute old
    extras = default_columns()
    suffix = "".join(f"\t{text}" for _, text in extras)
    names = [*MESSAGE_COLUMNS, *(name for name, _ in extras)]
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in names)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute("SET LOCAL session_replication_role = replica")  # skip per-row FK checks
        conn.execute("TRUNCATE messages CASCADE")  # empty anyway; lets COPY write frozen rows
        indexes = conn.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = 'messages'::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
            """
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        copy_sql = sql.SQL("COPY messages ({}) FROM STDIN WITH (FREEZE)").format(columns)
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for start in range(0, rows, SEED_CHUNK_ROWS):
                stop = min(rows, start + SEED_CHUNK_ROWS)
                copy.write(
                    seed_text(
                        rng, start, stop, rows, account, sender, numbers, base_us, step_us, suffix
                    )
                )
        timings["copy_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)  # the migration's own definitions, unchanged
        timings["index_s"] = time.perf_counter() - mark
        conn.commit()
    mark = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) messages")
    timings["vacuum_analyze_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    return {k: round(v, 2) for k, v in timings.items()}
