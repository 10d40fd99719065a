"""A delivery that outlived its lease records nothing over the claim that replaced it."""

from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlmodel import Session

from schemas.db import session_scope
from schemas.models import callback_attempts_table, callbacks_table
from schemas.types import utcnow
from tests.processes import Account
from tests.workers.test_claims import make_due
from workers.stages import callbacks
from workers.webhooks import outcomes

c = callbacks_table.c
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # due before anything else: a claim of 1 takes it


def make_pending(session: Session, account: Account) -> int:
    """A pending callback, not committed: the claim that follows commits it already claimed
    (the session platform's workers share this database and must never see it pending)."""
    sid = make_due(account, 1, "done")[0]
    callback_id = session.execute(
        insert(callbacks_table).returning(c.id),
        [{"message_sid": sid, "account_sid": account.sid, "url": "http://127.0.0.1:9/cb",
          "status": "sent", "params": {}, "webhook_id": f"{sid}.sent", "state": "pending",
          "attempts": 0, "next_attempt_at": LONG_AGO, "date_created": utcnow(),
          "date_updated": utcnow()}],
    ).scalar_one()  # fmt: skip
    return int(callback_id)


def test_a_result_after_the_lease_expired_changes_nothing(account: Account) -> None:
    # given: a callback claimed by a first worker, whose lease then ran out; the sweeper gave
    # it back and a second worker claimed it
    with session_scope() as session:
        callback_id = make_pending(session, account)
        [first] = callbacks.claim(session, 1)
        session.execute(update(callbacks_table).where(c.id == callback_id)
                        .values(state="pending", next_attempt_at=LONG_AGO))  # fmt: skip
        [second] = callbacks.claim(session, 1)
    assert first.id == second.id == callback_id
    # when: the first worker's delivery finally ends, as a retry
    stale = outcomes.Outcome(
        callback_id, first.message_sid, first.url, utcnow(), 70_000.0, 503, "HTTP 503", None,
        "pending", utcnow(), counted=True, created_at=first.date_created,
        lease=first.next_attempt_at,
    )  # fmt: skip
    with session_scope() as session:
        outcomes.record(session, [stale])
        row = session.execute(select(c.state, c.next_attempt_at, c.attempts)
                              .where(c.id == callback_id)).one()  # fmt: skip
        attempts = session.execute(
            select(callback_attempts_table.c.status_code)
            .where(callback_attempts_table.c.callback_id == callback_id)
        ).scalars().all()  # fmt: skip
    # then: the second claim still holds it, so no third worker can take it meanwhile; the
    # attempt is in the ledger all the same
    assert (row.state, row.next_attempt_at, row.attempts) == (
        "delivering",
        second.next_attempt_at,
        0,
    )
    assert attempts == [503]
    with session_scope() as session:  # settle it: nobody is to deliver this test's callback
        session.execute(update(callbacks_table).where(c.id == callback_id)
                        .values(state="failed", next_attempt_at=None))  # fmt: skip
        session.commit()


def test_a_result_under_its_own_lease_is_recorded(account: Account) -> None:
    with session_scope() as session:
        callback_id = make_pending(session, account)
        [claimed] = callbacks.claim(session, 1)
    done = outcomes.Outcome(
        callback_id, claimed.message_sid, claimed.url, utcnow(), 12.0, 200, None, "ok",
        "delivered", None, counted=True, created_at=claimed.date_created,
        lease=claimed.next_attempt_at,
    )  # fmt: skip
    with session_scope() as session:
        outcomes.record(session, [done])
        state = session.execute(select(c.state).where(c.id == callback_id)).scalar_one()
    assert state == "delivered"
