"""An endpoint's concurrency limit: grows while answers are fast, shrinks as they queue, halves
when the endpoint is overloaded. And when the claimer claims again."""

import time
from types import SimpleNamespace

import pytest

from schemas.types import utcnow
from workers.stages.callbacks import DELIVERING, PENDING
from workers.webhooks.endpoints import CUT_EVERY_S, Limit
from workers.webhooks.outcomes import Outcome, left_due
from workers.webhooks.pacing import CLAIM_EVERY_S, rest_after_claim


def test_a_limit_starts_where_told_and_never_above_its_ceiling() -> None:
    assert Limit(32, 64).slots == 32
    assert Limit(32, 8).slots == 8


def test_fast_answers_grow_the_limit_by_about_one_per_limits_worth() -> None:
    limit = Limit(4, 64)
    for _ in range(4):
        limit.answered(overloaded=False, latency_s=0.01)
    assert limit.slots == 4  # 4.93: each answer adds 1/limit
    limit.answered(overloaded=False, latency_s=0.01)
    assert limit.slots == 5


def test_answers_slower_than_fast_but_as_fast_as_ever_hold_the_limit() -> None:
    limit = Limit(4, 64)
    for _ in range(20):
        limit.answered(overloaded=False, latency_s=0.6)
    assert limit.slots == 4


def test_answers_much_slower_than_the_endpoints_best_shrink_the_limit() -> None:
    # given: an endpoint that answers in 10 ms
    limit = Limit(8, 64)
    for _ in range(8):
        limit.answered(overloaded=False, latency_s=0.01)
    assert limit.slots == 8
    # when: answers take 200 ms (they queue: at the endpoint, or for this process's threads)
    for _ in range(40):
        limit.answered(overloaded=False, latency_s=0.2)
    # then: fewer at once
    assert limit.slots < 5


def test_a_callback_put_back_without_calling_teaches_the_limit_nothing() -> None:
    # given: an endpoint that answers in 100 ms
    limit = Limit(8, 64)
    for _ in range(8):
        limit.answered(overloaded=False, latency_s=0.1)
    # when: callbacks are put back without a call (circuit open, refused by the guard): no
    # latency; they once set its best answer to 0 s, so every later 100 ms looked queued
    for _ in range(8):
        limit.answered(overloaded=False, latency_s=0.0)
    for _ in range(40):
        limit.answered(overloaded=False, latency_s=0.1)
    # then: its usual answers still count as usual
    assert limit.slots >= 8


def test_growth_stops_at_the_ceiling() -> None:
    limit = Limit(8, 10)
    for _ in range(1000):
        limit.answered(overloaded=False, latency_s=0.01)
    assert limit.slots == 10


def test_overload_halves_once_per_spell_and_never_below_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    limit = Limit(32, 64)
    for _ in range(10):  # ten timeouts of one slow spell
        limit.answered(overloaded=True, latency_s=5.0)
    assert limit.slots == 16
    for _ in range(10):
        clock[0] += CUT_EVERY_S
        limit.answered(overloaded=True, latency_s=5.0)
    assert limit.slots == 1


def test_a_short_claim_rests_only_when_it_left_busy_endpoints_out() -> None:
    # a claim that found all there was: the next wake-up claims at once (a trickle's callback
    # once waited out four times its claim's duration, tens of ms, for nothing)
    assert rest_after_claim(claimed=1, room=128, skipped=False, took_s=0.02) == CLAIM_EVERY_S
    # a full claim: more is due, claim again soon
    assert rest_after_claim(claimed=128, room=128, skipped=True, took_s=0.02) == CLAIM_EVERY_S
    # a short claim that skipped busy endpoints may have scanned past their backlog: it rests
    assert rest_after_claim(claimed=3, room=128, skipped=True, took_s=0.02) == pytest.approx(0.08)


def _outcome(fallback: dict | None = None) -> Outcome:
    now = utcnow()
    return Outcome(1, "SM1", "http://127.0.0.1/cb", now, 1.0, 200, None, None, "delivered",
                   None, counted=True, created_at=now, lease=now, fallback=fallback)  # fmt: skip


def test_after_recording_only_what_it_left_due_wants_a_claim() -> None:
    claimed = SimpleNamespace(state=DELIVERING)  # a promoted successor the recorder took itself
    made_due = SimpleNamespace(state=PENDING)  # one beyond its room: any claimer's
    assert not left_due([], [_outcome()])  # nothing held behind it
    assert not left_due([claimed], [_outcome()])  # type: ignore[list-item]
    assert left_due([claimed, made_due], [_outcome()])  # type: ignore[list-item]
    assert left_due([], [_outcome(fallback={"url": "http://127.0.0.1/fallback"})])
