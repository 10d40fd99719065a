"""A stage woken while its work keeps coming waits one window before it claims; at a trickle
it claims at once (workers/pipeline/gather.py)."""

import threading
import time

import pytest

from workers.pipeline import gather
from workers.pipeline.gather import Gatherer


def test_at_a_trickle_nothing_waits() -> None:
    gathering = Gatherer(0.05)
    # given ten rows claimed over the last second: fewer than one per window of 50 ms
    for _ in range(10):
        gathering.claimed(1)
    # then a wake-up claims at once
    started = time.monotonic()
    assert gathering.wait(threading.Event()) == 0.0
    assert time.monotonic() - started < 0.01


def test_while_rows_keep_coming_a_wake_up_waits_one_window() -> None:
    gathering = Gatherer(0.05)
    # given twenty rows over the last second: one per window of 50 ms
    for _ in range(4):
        gathering.claimed(5)
    # then a wake-up waits the window before it claims
    started = time.monotonic()
    assert gathering.wait(threading.Event()) == 0.05
    assert time.monotonic() - started >= 0.045


def test_the_rate_forgets_claims_older_than_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    gathering = Gatherer(0.05)
    gathering.claimed(100)
    assert gathering.rate() == 100
    # once a second has passed, a burst long gone gathers nothing
    later = time.monotonic() + gather.RATE_WINDOW_S + 0.01
    monkeypatch.setattr(gather.time, "monotonic", lambda: later)
    assert gathering.rate() == 0
    assert gathering.wait(threading.Event()) == 0.0


def test_a_shutdown_ends_the_wait() -> None:
    gathering = Gatherer(5.0)
    gathering.claimed(10)
    stop = threading.Event()
    stop.set()  # a warm shutdown began
    started = time.monotonic()
    gathering.wait(stop)
    assert time.monotonic() - started < 0.5


def test_a_window_of_zero_never_waits() -> None:
    gathering = Gatherer(0.0)
    gathering.claimed(1000)
    assert gathering.rate() == 0
    assert gathering.wait(threading.Event()) == 0.0
