"""A message's callbacks go out one at a time, in order: one owed while an earlier one is open
is written held, and is made due once that one settles, however the two transactions meet."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from schemas.db import get_engine, session_scope
from schemas.models import callback_attempts_table, callbacks_table, messages_table
from schemas.status import MessageStatus
from schemas.types import utcnow
from tests.processes import Account
from tests.workers.test_claims import make_due
from workers.pipeline.transitions import HELD_BEHIND, after_commit, move
from workers.stages import callbacks
from workers.webhooks import outcomes

c, m = callbacks_table.c, messages_table.c
URL = "http://127.0.0.1:9/cb"  # nothing listens: nobody is to deliver this test's callbacks


def message_with_callback_in_flight(account: Account) -> tuple[str, outcomes.Outcome]:
    """A queued message (in no worker's stage) whose 'queued' callback is being delivered,
    and the outcome that settles it under its lease."""
    sid = make_due(account, 1, "done")[0]
    now = utcnow()
    lease = now + timedelta(hours=1)
    with session_scope() as session:
        session.execute(update(messages_table).where(m.sid == sid).values(status_callback=URL))
        callback_id = session.execute(
            insert(callbacks_table).returning(c.id),
            [{"message_sid": sid, "account_sid": account.sid, "url": URL,
              "endpoint": callbacks.endpoint_of(URL), "status": "queued", "params": {},
              "webhook_id": f"{sid}.queued", "state": "delivering", "attempts": 0,
              "next_attempt_at": lease, "date_created": now, "date_updated": now}],
        ).scalar_one()  # fmt: skip
        session.commit()
    delivered = outcomes.Outcome(
        callback_id, sid, URL, utcnow(), 5.0, 200, None, "ok", "delivered", None,
        counted=True, created_at=now, lease=lease,
    )  # fmt: skip
    return sid, delivered


def move_and_commit(session: Session, sid: str) -> bool:
    """The message moves, as a stage's batch does: commit, then the after-commit step."""
    move(session, [sid], MessageStatus.SENDING)
    session.commit()
    return after_commit(session)


def settle_without_promoting(session: Session, callback_id: int) -> None:
    """The callback settles and its process dies before promoting the next one."""
    session.execute(
        update(callbacks_table)
        .where(c.id == callback_id)
        .values(state="delivered", next_attempt_at=None)
    )
    session.commit()


def states(sid: str) -> list[tuple[str, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(c.status, c.state).where(c.message_sid == sid).order_by(c.id)
        ).all()
        # Settle what the test made due: the session platform's workers share this database.
        session.execute(
            update(callbacks_table)
            .where(c.message_sid == sid, c.state.in_(callbacks.OPEN_STATES))
            .values(state="failed", next_attempt_at=None)
        )
        session.commit()
    return [(status, "due" if state in ("pending", "delivering") else state)
            for status, state in rows]  # fmt: skip


def test_a_callback_owed_while_the_earlier_one_settles_is_made_due_by_its_own_commit(
    account: Account,
) -> None:
    # given: a message whose first callback is being delivered
    sid, delivered = message_with_callback_in_flight(account)
    # when: the message moves (its transaction sees the first callback open, so the new one is
    # written held) and, before that commits, the first one settles and looks for a successor
    # (which it cannot see yet)
    with Session(get_engine(), expire_on_commit=False) as mover:
        assert move(mover, [sid], MessageStatus.SENDING) == [sid]
        with session_scope() as recorder:
            outcomes.record(recorder, [delivered])
        mover.commit()
        owed = after_commit(mover)
    # then: the move's own after-commit step made the new callback due
    assert owed
    assert states(sid) == [("queued", "delivered"), ("sending", "due")]


def test_a_held_callback_is_made_due_when_the_earlier_one_settles_later(
    account: Account,
) -> None:
    # given: a message whose first callback is being delivered
    sid, delivered = message_with_callback_in_flight(account)
    # when: the message moves and commits first (nothing to promote yet)
    with session_scope() as mover:
        move_and_commit(mover, sid)
        with session_scope() as reader:
            held = reader.execute(select(c.state).where(c.status == "sending",
                                                        c.message_sid == sid)).scalar_one()  # fmt: skip
        assert held == "held"
        # and then the first callback settles
        with session_scope() as recorder:
            outcomes.record(recorder, [delivered])
    # then: recording it made the next one due
    assert states(sid) == [("queued", "delivered"), ("sending", "due")]


def test_a_callback_with_nothing_open_before_it_is_due_at_once(account: Account) -> None:
    sid, delivered = message_with_callback_in_flight(account)
    with session_scope() as session:
        outcomes.record(session, [delivered])
        move_and_commit(session, sid)
    assert states(sid) == [("queued", "delivered"), ("sending", "due")]


def move_with_its_callback_held_long(sid: str, times: int = 2) -> None:
    """The message moves while its first callback is out: the new one is held, and has been
    for ``times`` as long as the sweeper waits before it looks."""
    with session_scope() as session:
        move(session, [sid], MessageStatus.SENDING)
        session.commit()  # no after_commit: its process died here, say
        session.execute(
            update(callbacks_table)
            .where(c.message_sid == sid, c.state == "held")
            .values(date_updated=utcnow() - times * callbacks.STRANDED_AFTER)
        )
        session.commit()


def test_the_sweeper_makes_due_a_held_callback_left_behind_by_a_crash(account: Account) -> None:
    # given: a held callback whose predecessor settled, the promoting steps never run
    sid, delivered = message_with_callback_in_flight(account)
    move_with_its_callback_held_long(sid)
    with session_scope() as session:
        settle_without_promoting(session, delivered.callback_id)
        # when
        rescued = callbacks.promote_stranded(session)
    # then
    assert sid in rescued
    assert states(sid) == [("queued", "delivered"), ("sending", "due")]


def test_the_sweepers_batch_is_not_filled_by_callbacks_rightly_waiting(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a batch of one, a message whose held callback rightly waits for its retrying
    # first one (held longer ago), and a message whose held callback was left behind
    monkeypatch.setattr(callbacks, "STRANDED_BATCH", 1)
    waiting, _ = message_with_callback_in_flight(account)
    move_with_its_callback_held_long(waiting, times=10)
    stranded, delivered = message_with_callback_in_flight(account)
    move_with_its_callback_held_long(stranded)
    with session_scope() as session:
        settle_without_promoting(session, delivered.callback_id)
        # when
        rescued = callbacks.promote_stranded(session)
    # then
    assert rescued == [stranded]
    assert states(waiting) == [("queued", "due"), ("sending", "held")]
    assert states(stranded) == [("queued", "delivered"), ("sending", "due")]


def test_the_sweeper_leaves_a_callback_held_while_the_earlier_one_is_open(
    account: Account,
) -> None:
    sid, _ = message_with_callback_in_flight(account)
    move_with_its_callback_held_long(sid)
    with session_scope() as session:
        rescued = callbacks.promote_stranded(session)
    assert sid not in rescued
    assert states(sid) == [("queued", "due"), ("sending", "held")]


def test_a_replay_sends_a_messages_callbacks_again_one_at_a_time_in_order(
    account: Account,
) -> None:
    # given: a message with two settled callbacks
    sid, delivered = message_with_callback_in_flight(account)
    with session_scope() as session:
        outcomes.record(session, [delivered])
        move_and_commit(session, sid)
        session.execute(
            update(callbacks_table).where(c.message_sid == sid).values(state="delivered")
        )
        session.commit()
        # when
        replayed = callbacks.replay(session, message_sid=sid)
    # then: the first is due again, the second waits for it
    assert replayed == 2
    assert states(sid) == [("queued", "due"), ("sending", "held")]


def test_settling_a_callback_claims_its_messages_next_one_for_the_same_worker(
    account: Account,
) -> None:
    # given: a message whose first callback is out, and its next one held behind it
    sid, delivered = message_with_callback_in_flight(account)
    with session_scope() as session:
        move_and_commit(session, sid)
        # when: the worker records the first one's delivery with room for more
        taken = outcomes.record(session, [delivered], room=4)
    # then: the next one is its claim at once, under a lease, with no claim between
    assert [(row.status, row.state) for row in taken] == [("sending", "delivering")]
    assert taken[0].next_attempt_at > utcnow() + timedelta(seconds=10)
    assert states(sid) == [("queued", "delivered"), ("sending", "due")]


@pytest.mark.parametrize(("room", "skip"), [(0, ()), (4, (callbacks.endpoint_of(URL),))],
                         ids=["no room", "its endpoint busy"])  # fmt: skip
def test_a_worker_without_room_for_the_next_callback_leaves_it_due_for_any(
    account: Account, room: int, skip: tuple[str, ...]
) -> None:
    sid, delivered = message_with_callback_in_flight(account)
    with session_scope() as session:
        move_and_commit(session, sid)
        promoted = outcomes.record(session, [delivered], room=room, skip_endpoints=skip)
    assert [(row.status, row.state) for row in promoted] == [("sending", "pending")]
    assert states(sid) == [("queued", "delivered"), ("sending", "due")]


def test_a_next_callback_claimed_by_a_worker_that_died_is_due_again_after_its_lease(
    account: Account,
) -> None:
    # given: the next callback claimed as the first one settled, and its worker gone
    sid, delivered = message_with_callback_in_flight(account)
    with session_scope() as session:
        move_and_commit(session, sid)
        [taken] = outcomes.record(session, [delivered], room=1)
        session.execute(
            update(callbacks_table)
            .where(c.id == taken.id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))  # its lease ran out
        )
        session.commit()
        # when: the sweeper looks
        callbacks.release_lost(session)
        state = session.execute(select(c.state).where(c.id == taken.id)).scalar_one()
    # then: any worker may deliver it, with the same webhook id
    assert state == "pending"
    states(sid)


def test_a_promotion_that_fails_after_the_outcome_is_recorded_records_nothing_twice(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a message whose next callback is held behind one being delivered
    sid, delivered = message_with_callback_in_flight(account)
    move_with_its_callback_held_long(sid)

    def database_gone(*_: Any) -> list[Any]:
        raise OperationalError("UPDATE callbacks", {}, Exception("server closed the connection"))

    # when: the outcome commits and the promotion after it fails
    monkeypatch.setattr(outcomes, "promote_claiming", database_gone)
    with session_scope() as session:
        assert outcomes.record(session, [delivered], room=4) == []
    monkeypatch.undo()
    # then: recorded once (the caller has nothing to retry), the next one still held
    with session_scope() as session:
        attempts = session.execute(
            select(func.count()).where(
                callback_attempts_table.c.callback_id == delivered.callback_id
            )
        ).scalar_one()
        assert attempts == 1
        # and the sweeper lets it go
        assert sid in callbacks.promote_stranded(session)
    assert states(sid) == [("queued", "delivered"), ("sending", "due")]


def promote_claiming(session: Session, sids: list[str]) -> list[str]:
    return [row.message_sid for row in callbacks.promote_claiming(session, sids, room=1)]


@pytest.mark.parametrize("first_promote", [callbacks.promote, promote_claiming],
                         ids=["promote", "promote claiming"])  # fmt: skip
def test_two_promotes_of_one_message_at_once_make_only_its_next_callback_due(
    account: Account, first_promote: Any
) -> None:
    # given: a message whose first callback settled (nobody promoted) and two held behind it
    sid, delivered = message_with_callback_in_flight(account)
    with session_scope() as session:
        move(session, [sid], MessageStatus.SENDING)
        move(session, [sid], MessageStatus.SENT)
        session.commit()
        settle_without_promoting(session, delivered.callback_id)
    # when: one promote has read which callback is next, and another promotes before its update
    results: list[list[str]] = []

    def the_other_promotes_first(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE callbacks SET state") and not results:
            results.append([])  # once: the other's own update passes through
            with session_scope() as other:
                results.append(callbacks.promote(other, [sid]))

    event.listen(get_engine(), "before_cursor_execute", the_other_promotes_first)
    try:
        with session_scope() as first:
            results.append(first_promote(first, [sid]))
    finally:
        event.remove(get_engine(), "before_cursor_execute", the_other_promotes_first)
    # then: the other moved the next one; the first, reading the same, moved nothing
    assert results[1:] == [[sid], []]
    assert states(sid) == [("queued", "delivered"), ("sending", "due"), ("sent", "held")]


@pytest.mark.parametrize("batch", [4, 12], ids=["one statement", "read then copied"])
def test_a_batch_holds_exactly_the_callbacks_whose_message_has_one_open(
    account: Account, batch: int
) -> None:
    # given: a batch of messages, half of them with a callback being delivered
    busy = [message_with_callback_in_flight(account)[0] for _ in range(batch // 2)]
    free = make_due(account, batch - len(busy), "done")
    with session_scope() as session:
        session.execute(update(messages_table).where(m.sid.in_(free)).values(status_callback=URL))
        session.commit()
        # when: they all move in one batch
        assert sorted(move(session, busy + free, MessageStatus.SENDING)) == sorted(busy + free)
        held = set(session.info[HELD_BEHIND])
        session.commit()
    # then: the new callbacks of the busy ones wait behind theirs; the others are due at once
    assert held == set(busy)
    for sid in busy:
        assert states(sid) == [("queued", "due"), ("sending", "held")]
    for sid in free:
        assert states(sid) == [("sending", "due")]
