"""New rows written in one statement: a few as one INSERT … VALUES, more by COPY; both read
back alike (JSON, timestamps, server defaults) and both fail as SQLAlchemy would."""

import secrets

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dispatcher.intake.create import create_message
from schemas import copying
from schemas.copying import insert_rows
from schemas.db import session_scope
from schemas.models import accounts_table, callbacks_table
from schemas.types import utcnow
from tests.processes import new_account, random_number


def callback_rows(count: int) -> list[dict[str, object]]:
    """Callbacks of a new message (JSON parameters with characters COPY escapes)."""
    account = new_account()
    now = utcnow()
    params = {"To": [random_number()], "From": [account.number], "Body": ["x"]}
    message_sid = create_message(account.sid, params, None).sid
    tag = secrets.token_hex(4)
    return [
        {"message_sid": message_sid, "account_sid": account.sid, "url": "http://127.0.0.1/cb",
         "endpoint": "http://127.0.0.1:80", "status": "sent",
         "params": {"MessageStatus": "sent", "Tag": f"{tag}-{n}", "Body": "ä,\t\"\\"},
         "webhook_id": f"{tag}.{n}", "state": "pending", "attempts": 0, "next_attempt_at": now,
         "date_created": now, "date_updated": now}
        for n in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize("count", [1, copying.VALUES_MAX, copying.VALUES_MAX + 1, 50])
def test_rows_read_back_as_written(count: int) -> None:
    rows = callback_rows(count)
    with session_scope() as session:
        insert_rows(session, callbacks_table, rows)
        session.commit()
    c = callbacks_table.c
    with session_scope() as session:
        stored = session.execute(
            select(c.id, c.webhook_id, c.params, c.date_created)
            .where(c.webhook_id.in_([row["webhook_id"] for row in rows]))
            .order_by(c.id)
        ).all()  # fmt: skip
    assert [row.webhook_id for row in stored] == [row["webhook_id"] for row in rows]
    assert [row.params for row in stored] == [row["params"] for row in rows]
    assert {row.date_created for row in stored} == {rows[0]["date_created"]}
    assert all(row.id for row in stored)  # the sequence's ids


@pytest.mark.parametrize("count", [1, copying.VALUES_MAX + 1])
def test_a_duplicate_key_fails_as_an_integrity_error_and_writes_nothing(count: int) -> None:
    now = utcnow()
    sid = f"AC{secrets.token_hex(16)}"
    rows = [{"sid": sid, "friendly_name": "dup", "token_salt": "salt", "date_created": now}] * 2
    rows += [{"sid": f"AC{secrets.token_hex(16)}", "friendly_name": "other", "token_salt": "salt",
              "date_created": now} for _ in range(count - 1)]  # fmt: skip
    with session_scope() as session, pytest.raises(IntegrityError):
        insert_rows(session, accounts_table, rows)
    with session_scope() as session:
        found = session.execute(select(accounts_table.c.sid).where(accounts_table.c.sid == sid))
        assert found.first() is None
