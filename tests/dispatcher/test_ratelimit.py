"""The per-account create limit, on the real Redis: API processes take an account's tokens a
few at a time and spend them themselves, never admitting more than the shared bucket gave."""

import time
import uuid

import pytest
import redis

from dispatcher.intake.ratelimit import GRANT_S, GRANT_TTL_S, Admission
from tests.conftest import RUN_REDIS_PREFIX
from workers.pipeline.throttle import TokenBucket

RATE, BURST = 2000.0, 100  # a grant is 20 tokens


class CountingBucket(TokenBucket):
    """The real bucket, counting the calls made to Redis."""

    calls = 0

    def wait_s(self, key: str, *, rate: float, burst: float, cost: float = 1,
               allow_debt: bool) -> float | None:  # fmt: skip
        self.calls += 1
        return super().wait_s(key, rate=rate, burst=burst, cost=cost, allow_debt=allow_debt)


@pytest.fixture
def bucket(redis_client: redis.Redis) -> CountingBucket:
    return CountingBucket(redis_client, f"{RUN_REDIS_PREFIX}api-rate-{uuid.uuid4().hex}")


def test_two_processes_admit_no_more_than_the_shared_bucket_gives(bucket: CountingBucket) -> None:
    # given: two API processes sharing one account's bucket, at a rate slow enough (a token
    # every 5 ms, grants of 2) that creates outpace it even on a loaded machine
    rate = 200.0
    first, second = Admission(bucket), Admission(bucket)
    started = time.monotonic()
    # when: the account fires 600 creates at them, alternately, as fast as they answer
    admitted = [(first if i % 2 else second).admit("ACx", 1, rate, BURST) for i in range(600)]
    elapsed = time.monotonic() - started
    # then: never more than the burst and what the rate refilled meanwhile; at least the burst
    # less the grants the two may still hold
    assert BURST - 2 * int(rate * GRANT_S) <= sum(admitted) <= BURST + rate * elapsed
    assert sum(admitted) < 600, f"{elapsed:.2f} s for 600 creates"
    # and Redis was asked at most twice per create (a grant it could not fill, then one token)
    assert bucket.calls <= 2 * 600


def test_within_the_limit_redis_is_asked_once_per_grant(bucket: CountingBucket) -> None:
    first, second = Admission(bucket), Admission(bucket)
    assert all((first if i % 2 else second).admit("ACw", 1, RATE, BURST) for i in range(80))
    assert bucket.calls <= 80 / 20 + 2


def test_an_unspent_grant_is_dropped_after_its_time(bucket: CountingBucket) -> None:
    admission = Admission(bucket)
    assert admission.admit("ACy", 1, RATE, BURST)  # takes 20, spends 1
    assert admission.admit("ACy", 1, RATE, BURST)  # spends its own
    assert bucket.calls == 1
    time.sleep(GRANT_TTL_S * 1.5)
    assert admission.admit("ACy", 1, RATE, BURST)
    assert bucket.calls == 2  # the 18 left were dropped: asked Redis again


def test_a_slow_limit_takes_one_token_per_create(bucket: CountingBucket) -> None:
    # given: an account limited to 5/s with a burst of 3 (a grant would be under one token)
    admission = Admission(bucket)
    # when / then: exactly the burst, one Redis call each
    assert [admission.admit("ACz", 1, 5.0, 3) for _ in range(5)] == [True] * 3 + [False] * 2
    assert bucket.calls == 5


def test_a_bulk_create_takes_its_count_at_once(bucket: CountingBucket) -> None:
    admission = Admission(bucket)
    assert admission.admit("ACb", 60, RATE, BURST)
    assert not admission.admit("ACb", 60, RATE, BURST)  # 40 left in the bucket
