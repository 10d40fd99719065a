"""Wake-ups that skip the broker, and what happens when nobody takes them that way.

A carrier worker applies the receipts its own binds store on a thread of its own; what a dead
process stored and never applied is the sweeper's. A callbacks worker listens for its stage's
wake-ups on Redis; with no listener they go through the broker.
"""

import threading
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import delete

from schemas.db import dispose_engine, get_engine, session_scope
from schemas.models import receipts_table
from schemas.settings import get_settings
from tests.smpp_driver import eventually
from workers.pipeline import wakeup
from workers.pipeline.transitions import CALLBACKS_OWED
from workers.stages import receipts, sweep
from workers.tasks import LocalDrain, wake_owed


@pytest.fixture
def pending(redis_client: redis.Redis) -> Iterator[str]:
    """The Redis key that marks a broker wake-up of the receipts stage pending (cleared)."""
    key = f"{get_settings().redis_prefix}wake:receipts"
    redis_client.delete(key)
    yield key
    redis_client.delete(key)


def test_a_wake_up_of_a_stage_drained_here_skips_the_broker(
    redis_client: redis.Redis, pending: str
) -> None:
    batches: list[int] = []

    def batch() -> int:
        batches.append(1)
        return 0

    local = LocalDrain("receipts", batch, batch_size=10)
    try:
        # when this process wakes the stage
        wakeup.wake("receipts")
        # then its own thread drains it, and nothing went through the broker
        eventually(lambda: len(batches) == 1, 5)
        assert redis_client.get(pending) is None
    finally:
        local.close()
    # once closed, a wake-up is any worker's again: published, its pending mark set
    wakeup.wake("receipts")
    assert redis_client.get(pending) is not None
    assert len(batches) == 1


def test_a_full_batch_is_drained_on_until_the_stage_is_empty(pending: str) -> None:
    left = [10, 10, 3]  # rows claimed per batch: full, full, then short

    def batch() -> int:
        return left.pop(0) if left else 0

    local = LocalDrain("receipts", batch, batch_size=10)
    try:
        wakeup.wake("receipts")
        eventually(lambda: not left, 5)
    finally:
        local.close()


@pytest.fixture
def listening(redis_client: redis.Redis) -> Iterator[str]:
    """The Redis key by which callbacks listeners say they listen (none at the start)."""
    prefix = get_settings().redis_prefix
    keys = [f"{prefix}{kind}:callbacks" for kind in ("wake", "signal", "listening")]
    redis_client.delete(*keys)
    yield keys[2]
    redis_client.delete(*keys)


def test_a_listener_takes_the_wake_up_and_no_task_is_published(
    redis_client: redis.Redis, listening: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[str] = []
    monkeypatch.setattr(wakeup, "_publish", lambda stage, *_: published.append(stage))
    woken = threading.Event()
    listener = wakeup.Listener("callbacks", woken.set)
    try:
        eventually(lambda: redis_client.exists(listening) == 1, 5)
        # when a status change owes a callback
        wakeup.wake("callbacks")
        # then the listener hears it, clears the pending mark, and the broker got nothing
        assert woken.wait(5)
        eventually(lambda: redis_client.get(f"{get_settings().redis_prefix}wake:callbacks") is None)
        assert published == []
        # and a second wake-up is heard as well
        woken.clear()
        wakeup.wake("callbacks")
        assert woken.wait(5)
    finally:
        listener.close()
    # once it stopped listening (a warm shutdown), wake-ups go through the broker again
    assert redis_client.exists(listening) == 0
    eventually(lambda: redis_client.get(f"{get_settings().redis_prefix}wake:callbacks") is None)
    wakeup.wake("callbacks")
    assert published == ["callbacks"]


def test_with_no_listener_the_wake_up_goes_through_the_broker_once(
    listening: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[str] = []
    monkeypatch.setattr(wakeup, "_publish", lambda stage, *_: published.append(stage))
    # when no callbacks worker listens (a prefork one, say) and two changes owe callbacks
    wakeup.wake("callbacks")
    wakeup.wake("callbacks")
    # then one task is published: its worker builds its deliverer and listens from then on
    assert published == ["callbacks"]


def test_receipts_a_dead_process_stored_and_never_applied_are_the_sweepers(pending: str) -> None:
    # given a receipt stored by a carrier worker that died before its drain ran
    with session_scope() as session:
        receipts.store(session, [{"carrier_id": "dead-worker-1", "status": "delivered",
                                  "error_code": None, "reference": None}])  # fmt: skip
    # when the sweeper runs (its process drains nothing itself)
    with session_scope() as session:
        report = sweep.sweep(session)
    # then it wakes the stage for any worker
    assert "receipts" in report.woken
    with session_scope() as session:
        r = receipts_table.c
        session.execute(delete(receipts_table).where(r.carrier_id == "dead-worker-1"))
        session.commit()


def test_threads_asking_for_the_engine_at_once_share_one() -> None:
    dispose_engine()
    start = threading.Barrier(8)
    engines: list[object] = []

    def ask() -> None:
        start.wait()
        engines.append(get_engine())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(engines) == 8
    assert all(engine is engines[0] for engine in engines)


def test_a_refused_wake_up_of_owed_callbacks_fails_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given a batch that committed status changes owing callbacks, and a broker that refuses
    def refuse(stage: str, sid: str | None = None) -> None:
        raise ConnectionError("broker away")

    monkeypatch.setattr(wakeup, "wake", refuse)
    with session_scope() as session:
        session.info[CALLBACKS_OWED] = True
        # when the batch wakes their stage, mid-batch (before its carrier hand-off)
        wake_owed(session)
    # then it goes on (the sweeper wakes the stage), and says so
    assert "the sweeper will" in caplog.text
