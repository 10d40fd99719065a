"""Fixtures of the tests that drive the carrier simulator as a real process: its HTTP carrier
(through the HTTP drivers) and its SMSC (through the SMPP driver)."""

import uuid
from collections.abc import Iterator

import pytest

from tests.carrier_simulator import DRIVER_TIMEOUT_S, KINDS, Receiver, simulator_process
from tests.http_server import serving
from tests.smpp_driver import Inbox
from tests.smsc import Smsc, smsc_process
from workers.carriers.base import CarrierDriver
from workers.carriers.factory import make_driver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def simulator_url(receiver: Receiver) -> Iterator[str]:
    with simulator_process(receiver.receipts_url) as url:
        yield url


@pytest.fixture
def prefix() -> str:
    return f"SM{uuid.uuid4().hex}"


@pytest.fixture(params=KINDS)
def driver(request: pytest.FixtureRequest, simulator_url: str) -> Iterator[CarrierDriver]:
    driver = make_driver(request.param, simulator_url, DRIVER_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def simulator_driver(simulator_url: str) -> Iterator[CarrierDriver]:
    driver = make_driver("simulator", simulator_url, DRIVER_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture(scope="module")
def smsc() -> Iterator[Smsc]:
    with smsc_process("--receipt-delay-ms", "20", "--smpp-receipt-resend-s", "0.5",
                      "--smpp-enquire-link-s", "0.5") as running:  # fmt: skip
        yield running


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()
