"""Storing new messages, and group commit of single creates: the messages of concurrent
requests stored in one transaction.

Each API process has one committer thread. A request's thread checks its message, hands it to
:func:`commit` and waits; the committer takes every message handed over meanwhile, inserts them
together (one statement per table) and commits once, then answers each waiting request. Nothing
waits to gather a batch: while one transaction runs the next batch queues by itself, so a lone
request costs what it did and a busy process commits tens of messages at a time.

Each request is still answered only after its message is committed (DESIGN's durability rule).
A batch that fails on a constraint (an Idempotency-Key raced by another request) is stored again
one message per transaction, so only the colliding request sees the error.
"""

import queue
from concurrent.futures import Future
from functools import lru_cache

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from dispatcher.intake.optouts import opted_out, refusal
from schemas.db import session_scope
from schemas.models import Message
from workers import supervision
from workers.stages.segment import store_new

BATCH_MAX = 500  # messages in one transaction at most


def store(session: Session, messages: list[Message]) -> dict[str, str]:
    """Insert the messages, their 'queued' (or 'scheduled') events and the segments of those
    that go to the carrier stage at once; the caller commits. Those to a recipient who opted
    out are not stored: returned, sid → the scope it opted out of (21610, optouts.py)."""
    refused = opted_out(session, messages)
    store_new(session, [message for message in messages if message.sid not in refused])
    return refused


def stored(messages: list[Message]) -> dict[str, str]:
    """Store and commit ``messages`` in a transaction of their own; returns those refused."""
    with session_scope() as session:
        refused = store(session, messages)
        session.commit()
    return refused


class Committer:
    def __init__(self) -> None:
        self._waiting: queue.SimpleQueue[tuple[Message, Future[None]]] = queue.SimpleQueue()
        supervision.thread("committer", self._run)

    def commit(self, message: Message) -> None:
        """Return once ``message`` is committed; raises what storing it raised."""
        done: Future[None] = Future()
        self._waiting.put((message, done))
        done.result()

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                refused = stored([message for message, _ in batch])
            except IntegrityError:
                for message, done in batch:  # one by one: only the colliding one fails
                    _answer(done, message)
            except Exception as exc:  # the database is away: every request answers its error
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for message, done in batch:
                    _settle(done, message, refused)


def _answer(done: Future[None], message: Message) -> None:
    try:
        refused = stored([message])
    except Exception as exc:
        done.set_exception(exc)
    else:
        _settle(done, message, refused)


def _settle(done: Future[None], message: Message, refused: dict[str, str]) -> None:
    if message.sid in refused:
        done.set_exception(refusal(message.to, refused[message.sid]))
    else:
        done.set_result(None)


@lru_cache
def committer() -> Committer:
    """This process's committer, started on first use."""
    return Committer()
