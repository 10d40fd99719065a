"""Claims take at most their limit of due rows of their stage, each row once, with its due time."""

from datetime import timedelta

from sqlalchemy import insert, select, update

from schemas.db import session_scope
from schemas.models import messages_table
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers.pipeline.claims import claim_due

m = messages_table.c


def make_due(account: Account, count: int, stage: str, spread: bool = True) -> list[str]:
    now = utcnow()
    rows = [
        {"sid": f"SMclaim{n:04d}{random_number()[-8:]}", "account_sid": account.sid,
         "to": random_number(), "from_number": account.number, "body": "x", "status": "queued",
         "direction": "outbound-api", "num_segments": 1, "num_media": 0, "encoding": "GSM-7",
         "smart_encoded": False, "media_urls": [], "validity_period_s": 36000,
         "expires_at": now + timedelta(hours=1), "stage": stage,
         "next_attempt_at": now - timedelta(seconds=n if spread else 0), "attempts": 0,
         "throttle_reserved": False, "reconcile": False,
         "date_created": now - timedelta(seconds=count - n),
         "date_updated": now}
        for n in range(count)
    ]  # fmt: skip
    with session_scope() as session:
        session.execute(insert(messages_table), rows)
        session.commit()
    return [row["sid"] for row in rows]


def test_a_claim_takes_at_most_its_limit_oldest_first_with_the_due_time(account: Account) -> None:
    # given: 30 due rows of a stage of this test's own
    stage = f"t{random_number()[-6:]}"
    sids = make_due(account, 30, stage)
    now = utcnow()
    # when
    with session_scope() as session:
        first = claim_due(session, stage, now=now, limit=10, sets={"stage": "taken"})
        session.commit()
        second = claim_due(session, stage, now=now, limit=100, sets={"stage": "taken"})
        session.commit()
        third = claim_due(session, stage, now=now, limit=100, sets={"stage": "taken"})
        session.commit()
        left = session.execute(select(m.sid).where(m.sid.in_(sids), m.stage == stage)).all()
    # then
    assert [len(first), len(second), len(third), len(left)] == [10, 20, 0, 0]
    assert [row.sid for row in first] == sids[::-1][:10]  # the longest due first, in order
    assert all(row.stage == "taken" for row in first)
    assert all(row.due_at <= now for row in first + second)
    assert sorted(row.sid for row in first + second) == sorted(sids)


def test_rows_not_due_yet_are_not_claimed(account: Account) -> None:
    stage = f"t{random_number()[-6:]}"
    sids = make_due(account, 3, stage)
    with session_scope() as session:
        later = utcnow() + timedelta(minutes=5)
        session.execute(
            update(messages_table).where(m.sid == sids[0]).values(next_attempt_at=later)
        )
        session.commit()
        claimed = claim_due(session, stage, now=utcnow(), limit=10, sets={"stage": "taken"})
        session.commit()
    assert sorted(row.sid for row in claimed) == sorted(sids[1:])


def test_rows_due_at_once_are_claimed_at_most_limit_and_first_accepted_first(
    account: Account,
) -> None:
    # given: 30 rows handed on together (one due time), accepted one after another
    stage = f"t{random_number()[-6:]}"
    sids = make_due(account, 30, stage, spread=False)
    # when
    with session_scope() as session:
        claimed = claim_due(session, stage, now=utcnow(), limit=10, sets={"stage": "taken"})
        session.commit()
    # then
    assert [row.sid for row in claimed] == sids[:10]
