"""Retention against the real database: final messages past their account's retention leave with
every row and media byte that is theirs; what is not final stays, a scheduled message counts
from its SendAt, an account's own retention trims it alone; the CLI's dry run counts, the pass
removes, and /metrics learns the oldest message's age."""

import threading
import time
from datetime import timedelta

import httpx
from click.testing import CliRunner
from sqlalchemy import func, insert, select, text, update

from dispatcher.cli.main import main
from schemas.db import get_engine, session_scope
from schemas.ids import new_sid
from schemas.models import (
    accounts_table,
    callback_attempts_table,
    callbacks_table,
    media_table,
    message_events_table,
    messages_table,
    receipts_table,
    segments_table,
)
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers import retention

CHILDREN = (message_events_table, segments_table, media_table, callbacks_table)


def stored(account: Account, status: str, age_days: float, send_at_days: float | None = None,
           mms: bool = False) -> str:  # fmt: skip
    """A message of ``account``, ``age_days`` old, with an event, a segment and its applied
    receipt, a callback with an attempt, and (``mms``) a stored image."""
    sid, now = new_sid("MM" if mms else "SM"), utcnow()
    created = now - timedelta(days=age_days)
    send_at = None if send_at_days is None else now - timedelta(days=send_at_days)
    carrier_id = f"C{sid[2:20]}"
    with session_scope() as session:
        session.execute(insert(messages_table).values(
            sid=sid, account_sid=account.sid, to=random_number(), from_number=account.number,
            body="old news", status=status, num_segments=1, num_media=int(mms),
            encoding="GSM-7", smart_encoded=False, media_urls=[], validity_period_s=36000,
            expires_at=created, send_at=send_at, stage="done", attempts=0,
            throttle_reserved=False, reconcile=False, date_created=created, date_updated=created,
        ))  # fmt: skip
        session.execute(insert(message_events_table).values(
            message_sid=sid, status=status, date_created=created))  # fmt: skip
        session.execute(insert(segments_table).values(
            message_sid=sid, number=1, total=1, text="old news", udh_ref=1,
            carrier_id=carrier_id, status="delivered", date_updated=created))  # fmt: skip
        session.execute(insert(receipts_table).values(
            carrier_id=carrier_id, status="delivered", date_received=created,
            applied_at=created))  # fmt: skip
        callback = session.execute(insert(callbacks_table).values(
            message_sid=sid, account_sid=account.sid, url="http://127.0.0.1:9/cb",
            endpoint="http://127.0.0.1:9", status=status, params={}, webhook_id=f"{sid}.1",
            state="delivered", attempts=1, date_created=created, date_updated=created,
        ).returning(callbacks_table.c.id)).scalar_one()  # fmt: skip
        session.execute(insert(callback_attempts_table).values(
            callback_id=callback, url="http://127.0.0.1:9/cb", date_attempted=created,
            status_code=200, latency_ms=1.0))  # fmt: skip
        if mms:
            session.execute(insert(media_table).values(
                sid=new_sid("ME"), message_sid=sid, account_sid=account.sid, position=0,
                source_url="http://127.0.0.1:9/a.png", content_type="image/png", size_bytes=100_000,
                sha256="0" * 64, content=b"\x89PNG" + b"\0" * 99_996, date_created=created,
            ))  # fmt: skip
        session.commit()
    return sid


def left(sids: list[str]) -> dict[str, int]:
    """Rows still stored per table for these messages."""
    with session_scope() as session:
        counts = {
            table.name: session.execute(
                select(func.count()).where(table.c.message_sid.in_(sids))
            ).scalar_one()
            for table in CHILDREN
        }
        counts["messages"] = session.execute(
            select(func.count()).where(messages_table.c.sid.in_(sids))
        ).scalar_one()
        counts["callback_attempts"] = session.execute(
            select(func.count()).select_from(callback_attempts_table)
            .join(callbacks_table, callbacks_table.c.id == callback_attempts_table.c.callback_id)
            .where(callbacks_table.c.message_sid.in_(sids))
        ).scalar_one()  # fmt: skip
    return {name: count for name, count in counts.items() if count}


def test_final_messages_past_retention_leave_with_all_that_is_theirs(account: Account) -> None:
    # given: old final messages (an MMS with 100 KB stored), and old ones still moving
    gone = [stored(account, "delivered", 401), stored(account, "failed", 500, mms=True),
            stored(account, "received", 401), stored(account, "canceled", 401)]  # fmt: skip
    replaying = stored(account, "delivered", 800)
    with session_scope() as session:  # its callback replayed just now: it waits for delivery
        session.execute(update(callbacks_table).where(callbacks_table.c.message_sid == replaying)
                        .values(state="delivering"))  # fmt: skip
        session.commit()
    kept = [
        stored(account, "sent", 900),
        stored(account, "queued", 900),
        stored(account, "delivered", 399),
        stored(account, "delivered", 450, send_at_days=10),  # scheduled: from its SendAt
        replaying,
    ]
    # when: a pass runs
    done = retention.run()
    # then: the old final ones are gone, every row and byte of theirs; the rest is all there
    assert done.removed[account.sid] == len(gone)
    assert left(gone) == {}
    assert left(kept)["messages"] == len(kept)
    assert left(kept)["callback_attempts"] == len(kept)
    with session_scope() as session:
        receipts = session.execute(select(func.count()).where(
            receipts_table.c.carrier_id.in_([f"C{sid[2:20]}" for sid in gone]))).scalar_one()  # fmt: skip
    assert receipts == 0
    # and a second pass finds nothing more
    assert retention.run().removed.get(account.sid, 0) == 0


def test_an_account_with_shorter_retention_is_trimmed_and_another_untouched(
    account: Account, other_account: Account
) -> None:
    mine, theirs = stored(account, "delivered", 10), stored(other_account, "delivered", 10)
    runner = CliRunner()
    # when: the operator gives one account 7 days and asks what a pass would do
    updated = runner.invoke(main, ["accounts", "update", account.sid, "--retention-days", "7"])
    assert "retention 7 days" in updated.output
    dry = runner.invoke(main, ["retention", "--dry-run"])
    assert f"{account.sid}  would remove 1 messages" in dry.output
    assert left([mine])["messages"] == 1  # nothing removed by a dry run
    # then: the pass removes that account's old message and leaves the other's
    done = runner.invoke(main, ["retention"])
    assert done.exit_code == 0, done.output
    assert left([mine]) == {}
    assert left([theirs])["messages"] == 1
    runner.invoke(main, ["accounts", "update", account.sid, "--default-retention"])
    with session_scope() as session:
        days = session.execute(select(accounts_table.c.retention_days).where(
            accounts_table.c.sid == account.sid)).scalar()  # fmt: skip
    assert days is None


def test_metrics_show_the_oldest_stored_message(account: Account, api_url: str) -> None:
    stored(account, "sent", 3000)  # not final: kept, and the oldest
    retention.run()
    text = httpx.get(f"{api_url}/metrics").text
    [line] = [row for row in text.splitlines()
              if row.startswith("mycpaas_oldest_message_age_seconds ")]  # fmt: skip
    assert float(line.split()[1]) >= 3000 * 86400 - 60


def test_a_replay_committed_while_a_pass_chose_its_message_keeps_it(account: Account) -> None:
    # given: an old final message, and a replay of its callbacks under way (not committed yet)
    sid = stored(account, "delivered", 500)
    replay = get_engine().connect()
    held = replay.begin()
    replay.execute(update(callbacks_table).where(callbacks_table.c.message_sid == sid)
                   .values(state="pending"))  # fmt: skip
    # when: a pass runs meanwhile: it chooses the message (the replay is not visible yet) and
    # waits for the callback's lock
    done: list[retention.Pass] = []
    runner = threading.Thread(target=lambda: done.append(retention.run()))
    runner.start()

    def waiting() -> bool:
        with session_scope() as session:
            return bool(session.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%FROM callbacks%FOR UPDATE%'")).scalar())  # fmt: skip

    deadline = time.monotonic() + 10
    while not waiting():
        assert time.monotonic() < deadline, "the pass never waited for the callback's lock"
        time.sleep(0.05)
    held.commit()
    replay.close()
    runner.join(10)
    # then: the message and its replayed callback are still there, for the next pass
    assert left([sid])["messages"] == 1
    assert left([sid])["callbacks"] == 1
    assert done[0].removed.get(account.sid, 0) == 0
