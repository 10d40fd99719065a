"""New rows of one table in one statement: ``COPY`` on Postgres (a few: one ``INSERT``), an
insert of many rows elsewhere.

Through SQLAlchemy, a list of rows reaches Postgres as one statement per row (pipelined); as
``COPY … FROM STDIN`` it costs about half the CPU, client and server (new messages and their
events at a million stored: 0.10 ms a message against 0.19). ``COPY`` takes two round trips,
though, so a few rows (a single create's, a steady stage's small batch) go as one ``INSERT`` of
several ``VALUES`` instead: one statement, one round trip. Every row names the same columns;
a column left out gets its server default (a sequence's id), never a Python-side one. A
failure is raised as SQLAlchemy raises a statement's (``IntegrityError`` for a duplicate key,
``OperationalError`` for a lost server), and a connection it broke leaves the pool.
"""

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json
from sqlalchemy import JSON, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

VALUES_MAX = 8  # rows written as one INSERT … VALUES (one round trip); more go by COPY (two)


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add ``rows`` to ``table`` in the session's transaction; the caller commits."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    unknown = set(columns) - set(table.columns.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {sorted(unknown)}")
    as_json = _json_columns(table, columns)
    if len(rows) <= VALUES_MAX:
        statement = _statement(table.name, tuple(columns), len(rows))
        execute(session, statement, flat_values(table, columns, rows), f"INSERT {table.name}")
        return
    with (
        raw_cursor(session, f"COPY {table.name}") as cursor,
        cursor.copy(_statement(table.name, tuple(columns))) as copy,
    ):
        for row in rows:
            values = zip([row[name] for name in columns], as_json, strict=True)
            copy.write_row([json.dumps(v) if encode else v for v, encode in values])


def flat_values(table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list:
    """The rows' values, row after row, as one statement's parameters (JSON columns as JSON)."""
    as_json = _json_columns(table, columns)
    return [
        Json(value) if encode else value
        for row in rows
        for value, encode in zip([row[name] for name in columns], as_json, strict=True)
    ]


def _json_columns(table: Table, columns: Sequence[str]) -> list[bool]:
    return [isinstance(table.columns[name].type, JSON) for name in columns]


def values_list(width: int, count: int) -> sql.Composable:
    """``(%s, …), (%s, …)``: ``count`` rows of ``width`` placeholders, for :func:`flat_values`."""
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * width))
    return sql.SQL(", ").join([one] * count)


def execute(session: Session, statement: bytes, params: Sequence[Any], what: str) -> list[tuple]:
    """One statement of our own text on the session's connection (Postgres), in its
    transaction; returns its rows (none for a statement that returns none)."""
    with raw_cursor(session, what) as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@contextmanager
def raw_cursor(session: Session, what: str) -> Iterator[psycopg.Cursor]:
    """A psycopg cursor on the session's connection; a failure raised as SQLAlchemy raises a
    statement's (``what`` names it), and a connection it broke leaves the pool."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor:
            yield cursor
    except psycopg.Error as exc:
        if raw.broken:
            connection.invalidate(exc)
        raise DBAPIError.instance(what, None, exc, psycopg.Error) from exc


@lru_cache(maxsize=256)
def _statement(table: str, columns: tuple[str, ...], values: int = 0) -> bytes:
    """``COPY`` of these columns, or (``values`` rows) one ``INSERT … VALUES``; as bytes, so
    psycopg neither composes nor encodes it again."""
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    if not values:
        return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names).as_bytes()
    return sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
        sql.Identifier(table), names, values_list(len(columns), values)).as_bytes()  # fmt: skip
