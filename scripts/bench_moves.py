"""CPU a message's status changes cost, one message per batch: the steady-rate case.

    uv run python scripts/bench_moves.py [-n 2000] [--stored 20000]

On a scratch store (as the bench's), moves each of ``-n`` messages with a StatusCallback
through ``sending``, ``sent`` and ``delivered`` alone, each in its own transaction as a stage
at a trickle does (the move, its event and its callback, the commit, the after-commit step),
and prints the CPU per message of this process and of its Postgres backend.
"""

import time
from datetime import timedelta

import click
from sqlalchemy import insert, select, text

from dispatcher.bench import cputime
from dispatcher.bench.platform import scratch_store
from dispatcher.bench.stored import fill_store
from schemas.db import session_scope
from schemas.models import accounts_table, messages_table
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.pipeline.transitions import after_commit, move

STATUSES = (MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED)


def _messages(count: int) -> list[str]:
    now = utcnow()
    with session_scope() as session:
        account = session.execute(select(accounts_table.c.sid).limit(1)).first()
        assert account is not None
        rows = [
            {"sid": f"SMmove{n:026d}", "account_sid": account[0], "to": "+12025550100",
             "from_number": "+12025550199", "body": "x", "status": "queued",
             "direction": "outbound-api", "num_segments": 1, "num_media": 0, "encoding": "GSM-7",
             "smart_encoded": False, "media_urls": [], "validity_period_s": 36000,
             "expires_at": now + timedelta(hours=1), "stage": "bench", "attempts": 0,
             "throttle_reserved": False, "reconcile": False, "date_created": now,
             "date_updated": now, "status_callback": "http://127.0.0.1:9/cb"}
            for n in range(count)
        ]  # fmt: skip
        session.execute(insert(messages_table), rows)
        session.commit()
    return [row["sid"] for row in rows]


def _backend_cpu_s(pid: int) -> float:
    stat = cputime.read_stat(pid)
    assert stat is not None, "the moves' Postgres backend is gone"
    return cputime.cpu_s(stat[1])


@click.command()
@click.option("-n", "--count", default=2000, show_default=True, help="Messages moved.")
@click.option("--stored", default=20000, show_default=True, help="Settled messages stored first.")
def main(count: int, stored: int) -> None:
    with scratch_store():
        fill_store(stored)
        sids = _messages(count)
        with session_scope() as session:  # the pool's one connection: the moves' backend
            backend = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        client, server = time.process_time(), _backend_cpu_s(backend)
        for status in STATUSES:
            for sid in sids:
                with session_scope() as session:
                    assert move(session, [sid], status) == [sid]
                    session.commit()
                    after_commit(session)
        client, server = time.process_time() - client, _backend_cpu_s(backend) - server
    per = 1000 / count
    click.echo(f"moves      {len(STATUSES)} a message, one message a batch: "
               f"{client * per:.2f} ms of CPU here, {server * per:.2f} ms in Postgres, "
               f"per message")  # fmt: skip


if __name__ == "__main__":
    main()
