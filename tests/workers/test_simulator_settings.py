"""The carrier simulator as a real process under its settings: latency, receipt retries against
a failing receiver, volume, and its reset."""

import time

import httpx
import pytest

from tests.carrier_simulator import (
    DRIVER_TIMEOUT_S,
    KINDS,
    Receiver,
    counters,
    eventually,
    simulator_process,
    submission,
)
from tests.http_server import serving
from workers.carriers.base import Accepted, CarrierDriver
from workers.carriers.factory import make_driver

# --- configuration: latency, receipt retries, volume -----------------------------------------


@pytest.mark.e2e
def test_latency_is_added_to_every_submit_request(receiver: Receiver, prefix: str) -> None:
    # given
    with simulator_process(receiver.receipts_url, latency_ms=300) as url:
        drivers = [make_driver(kind, url, DRIVER_TIMEOUT_S) for kind in KINDS]
        try:
            for driver in drivers:  # warm the connections up
                driver.lookup(f"{prefix}-warm-up")
            # when
            elapsed = []
            for n, driver in enumerate(drivers):
                started = time.monotonic()
                driver.submit([submission(f"{prefix}-{n}")])
                elapsed.append(time.monotonic() - started)
            lookup_started = time.monotonic()
            drivers[0].lookup(f"{prefix}-0")
            lookup_elapsed = time.monotonic() - lookup_started
        finally:
            for driver in drivers:
                driver.close()
    # then
    assert all(0.29 <= seconds < 1.5 for seconds in elapsed), elapsed
    assert lookup_elapsed < 0.29


@pytest.mark.e2e
def test_receipts_survive_a_failing_receiver_without_loss_or_duplicates(prefix: str) -> None:
    # given: a receiver that answers 503 three times, and small receipt batches
    references = [f"{prefix}-{n}" for n in range(25)]
    with (
        serving(Receiver()) as receiver,
        simulator_process(receiver.receipts_url, receipt_batch_max=10, receipt_delay_ms=0) as url,
    ):
        receiver.fail_next(3)
        driver = make_driver("simulator", url, DRIVER_TIMEOUT_S)
        try:
            # when
            results = driver.submit([submission(reference) for reference in references])
            eventually(lambda: counters(url, prefix)["receipts_pending"] == 0)
            seen = counters(url, prefix)
        finally:
            driver.close()
    # then
    assert receiver.failed == 3
    receipts = receiver.receipts(prefix)
    assert sorted(r["reference"] for r in receipts) == sorted(references)
    assert {r["carrier_id"] for r in receipts} == {
        r.carrier_id for r in results if isinstance(r, Accepted)
    }
    assert all(len(batch) <= 10 for batch in receiver.batches)
    assert seen["receipts_sent"] == 25


def test_a_batch_of_a_thousand_goes_in_one_call(
    simulator_driver: CarrierDriver, receiver: Receiver, simulator_url: str, prefix: str
) -> None:
    # given
    batch = [submission(f"{prefix}-{n}", text=f"part {n}") for n in range(1000)]
    # when
    started = time.monotonic()
    results = simulator_driver.submit(batch)
    elapsed = time.monotonic() - started
    eventually(lambda: counters(simulator_url, prefix)["receipts_sent"] == 1000)
    # then
    assert [r.reference for r in results] == [s.reference for s in batch]
    carrier_ids = {r.carrier_id for r in results if isinstance(r, Accepted)}
    assert len(carrier_ids) == 1000
    assert elapsed < 2.0
    receipts = receiver.receipts(prefix)
    assert len(receipts) == 1000
    assert {r["carrier_id"] for r in receipts} == carrier_ids


@pytest.mark.e2e
def test_reset_forgets_everything(receiver: Receiver, prefix: str) -> None:
    # given
    with simulator_process(receiver.receipts_url, receipt_delay_ms=60_000) as url:
        driver = make_driver("simulator", url, DRIVER_TIMEOUT_S)
        try:
            driver.submit([submission(f"{prefix}-1")])
            # when
            httpx.post(f"{url}/reset", timeout=5).raise_for_status()
            # then
            assert counters(url, "") == {
                "submissions": {},
                "accepted": 0,
                "receipts_sent": 0,
                "receipts_pending": 0,
            }
            assert driver.lookup(f"{prefix}-1") is None
        finally:
            driver.close()
