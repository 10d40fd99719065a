"""A stage woken while its work keeps coming waits one window before it claims; at a trickle
it claims at once (workers/pipeline/gather.py)."""

import threading
import time

import pytest

from workers.pipeline import gather
from workers.pipeline.gather import Gatherer


@pytest.mark.parametrize(
    ("claims", "rows", "waited"),
    [
        (10, 1, 0.0),  # a trickle: ten rows in the last second, under one per window of 50 ms
        (4, 5, 0.05),  # twenty rows in the last second: one per window, so it waits one
    ],
    ids=["trickle", "steady"],
)
def test_a_wake_up_waits_one_window_only_while_rows_keep_coming(
    claims: int, rows: int, waited: float
) -> None:
    gathering = Gatherer(0.05)
    for _ in range(claims):
        gathering.claimed(rows)
    started = time.monotonic()
    assert gathering.wait(threading.Event()) == waited
    took = time.monotonic() - started
    assert took >= 0.045 if waited else took < 0.01


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
