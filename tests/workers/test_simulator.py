"""The carrier simulator as a real process, driven through the real drivers: its outcomes by
destination number, its dedupe and its lookup.

The simulator runs as a subprocess on a loopback port and posts its receipts to a real HTTP
receiver in a thread of this process. Every test uses references under its own prefix, so
tests sharing one simulator never see each other's counts or receipts.
"""

import re
from datetime import UTC, datetime

import pytest

from tests.carrier_simulator import (
    ANY_CARRIER_ID,
    DELIVERED,
    DRIVER_TIMEOUT_S,
    FILTERED,
    LANDLINE,
    RECEIPTS_TOKEN,
    SILENT,
    THROTTLED,
    TRANSIENT,
    UNKNOWN,
    UNKNOWN_ERROR,
    UNREACHABLE,
    Receiver,
    counters,
    settle,
    submission,
)
from workers.carriers.base import (
    Accepted,
    CarrierDriver,
    Deferred,
    Rejected,
    Result,
    TransientCarrierError,
)
from workers.carriers.factory import make_driver

# --- outcomes by destination number, through both drivers ------------------------------------

OUTCOMES: list[tuple[str, type[Result], int | None, tuple[str, int | None] | None]] = [
    # to, result at submit, its error code, receipt (status, error_code) or None for none
    (DELIVERED, Accepted, None, ("delivered", None)),
    (UNREACHABLE, Accepted, None, ("undelivered", 30003)),
    (UNKNOWN, Accepted, None, ("undelivered", 30005)),
    (UNKNOWN_ERROR, Accepted, None, ("undelivered", 30008)),
    (SILENT, Accepted, None, None),
    (LANDLINE, Rejected, 30006, None),
    (FILTERED, Rejected, 30007, None),
]


@pytest.mark.parametrize(("to", "result_type", "error_code", "receipt"), OUTCOMES)
def test_destination_number_picks_the_outcome(
    driver: CarrierDriver,
    receiver: Receiver,
    simulator_url: str,
    prefix: str,
    to: str,
    result_type: type[Result],
    error_code: int | None,
    receipt: tuple[str, int | None] | None,
) -> None:
    # given
    reference = f"{prefix}-1"
    # when
    [result] = driver.submit([submission(reference, to)])
    settle(driver, receiver, simulator_url, prefix)
    # then
    assert type(result) is result_type
    assert result.reference == reference
    if isinstance(result, Rejected):
        assert result.error_code == error_code
    mine = [r for r in receiver.receipts(prefix) if r["reference"] == reference]
    if receipt is None:
        assert mine == []
    else:
        assert isinstance(result, Accepted)
        assert [(r["carrier_id"], r["status"], r["error_code"]) for r in mine] == [
            (result.carrier_id, *receipt)
        ]
    assert counters(simulator_url, prefix)["submissions"] == {reference: 1, f"{prefix}-control": 1}


def test_receipts_carry_the_token_and_a_utc_done_date(
    simulator_driver: CarrierDriver, receiver: Receiver, simulator_url: str, prefix: str
) -> None:
    # given
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    # when
    simulator_driver.submit([submission(f"{prefix}-1")])
    settle(simulator_driver, receiver, simulator_url, prefix)
    # then
    [receipt, _control] = receiver.receipts(prefix)
    assert re.fullmatch(r"\d{10}", receipt["done_date"])
    done = datetime.strptime(receipt["done_date"], "%y%m%d%H%M").replace(tzinfo=UTC)
    assert before <= done <= datetime.now(UTC)
    assert set(receiver.authorizations) == {f"Bearer {RECEIPTS_TOKEN}"}


@pytest.mark.parametrize(
    ("kind", "retry_after_s"),
    [("simulator", 0.2), ("http", 1.0)],  # /messages says Retry-After: 1, whole seconds
)
def test_transient_number_is_deferred_twice_then_accepted(
    kind: str,
    retry_after_s: float,
    simulator_url: str,
    receiver: Receiver,
    prefix: str,
) -> None:
    # given
    reference = f"{prefix}-1"
    driver = make_driver(kind, simulator_url, DRIVER_TIMEOUT_S)
    try:
        # when
        results = [driver.submit([submission(reference, TRANSIENT)])[0] for _ in range(3)]
        settle(driver, receiver, simulator_url, prefix)
    finally:
        driver.close()
    # then
    first, second, third = results
    assert isinstance(first, Deferred)
    assert isinstance(second, Deferred)
    assert first.retry_after_s == second.retry_after_s == retry_after_s
    assert isinstance(third, Accepted)
    mine = [r for r in receiver.receipts(prefix) if r["reference"] == reference]
    assert [(r["carrier_id"], r["status"]) for r in mine] == [(third.carrier_id, "delivered")]
    assert counters(simulator_url, prefix)["submissions"][reference] == 3


def test_throttled_number_fails_the_whole_batch_once_with_retry_after(
    simulator_driver: CarrierDriver, receiver: Receiver, simulator_url: str, prefix: str
) -> None:
    # given: a batch holding a throttled number and an ordinary one
    batch = [submission(f"{prefix}-1", THROTTLED), submission(f"{prefix}-2")]
    # when
    with pytest.raises(TransientCarrierError) as refused:
        simulator_driver.submit(batch)
    counted_after_429 = counters(simulator_url, prefix)["submissions"]
    results = simulator_driver.submit(batch)
    settle(simulator_driver, receiver, simulator_url, prefix)
    # then
    assert refused.value.status_code == 429
    assert refused.value.retry_after_s == 1.0
    assert counted_after_429 == {}
    assert results == [
        Accepted(f"{prefix}-1", ANY_CARRIER_ID),
        Accepted(f"{prefix}-2", ANY_CARRIER_ID),
    ]
    assert sorted(r["reference"] for r in receiver.receipts(prefix)) == [
        f"{prefix}-1",
        f"{prefix}-2",
        f"{prefix}-control",
    ]


def test_throttled_number_defers_the_rest_of_an_http_call_unsent(
    simulator_url: str, receiver: Receiver, prefix: str
) -> None:
    # given
    batch = [submission(f"{prefix}-1", THROTTLED), submission(f"{prefix}-2")]
    driver = make_driver("http", simulator_url, DRIVER_TIMEOUT_S)
    try:
        # when
        first = driver.submit(batch)
        counted_after_429 = counters(simulator_url, prefix)["submissions"]
        second = driver.submit(batch)
        settle(driver, receiver, simulator_url, prefix)
    finally:
        driver.close()
    # then
    assert [type(r) for r in first] == [Deferred, Deferred]
    assert [r.retry_after_s for r in first if isinstance(r, Deferred)] == [1.0, 1.0]
    assert counted_after_429 == {}  # the 429'd one is not counted, the second never went out
    assert second == [
        Accepted(f"{prefix}-1", ANY_CARRIER_ID),
        Accepted(f"{prefix}-2", ANY_CARRIER_ID),
    ]


# --- dedupe and lookup -----------------------------------------------------------------------


def test_same_reference_twice_gets_the_first_result_and_one_receipt(
    driver: CarrierDriver, receiver: Receiver, simulator_url: str, prefix: str
) -> None:
    # given
    reference = f"{prefix}-1"
    [first] = driver.submit([submission(reference)])
    # when
    [again] = driver.submit([submission(reference, text="resent after a lost answer")])
    settle(driver, receiver, simulator_url, prefix)
    # then
    assert isinstance(first, Accepted)
    assert again == first
    seen = counters(simulator_url, prefix)
    assert seen["submissions"][reference] == 2
    assert seen["accepted"] == 2  # the reference and the control, each once
    assert [r["carrier_id"] for r in receiver.receipts(prefix) if r["reference"] == reference] == [
        first.carrier_id
    ]


def test_same_reference_twice_in_one_batch_gets_one_carrier_id(
    simulator_driver: CarrierDriver, simulator_url: str, prefix: str
) -> None:
    # given
    reference = f"{prefix}-1"
    # when
    first, second = simulator_driver.submit([submission(reference), submission(reference)])
    # then
    assert first == second
    assert counters(simulator_url, prefix)["submissions"] == {reference: 2}


def test_lookup_answers_what_was_accepted_and_counts_nothing(
    driver: CarrierDriver, simulator_url: str, prefix: str
) -> None:
    # given
    accepted, rejected = f"{prefix}-1", f"{prefix}-2"
    [result] = driver.submit([submission(accepted)])
    driver.submit([submission(rejected, LANDLINE)])
    # when
    found = driver.lookup(accepted)
    not_accepted = driver.lookup(rejected)
    never_sent = driver.lookup(f"{prefix}-3")
    # then
    assert found == result
    assert not_accepted is None
    assert never_sent is None
    assert counters(simulator_url, prefix)["submissions"] == {accepted: 1, rejected: 1}
