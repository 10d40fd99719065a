"""The HTTP carrier simulator as a real process, the receipts receiver it posts to, and what
tests of it share: the destination numbers, a submission, its counters, waiting for receipts.

The simulator runs as a subprocess on a loopback port and posts its receipts to a real HTTP
receiver in a thread of the test process (fixtures in ``tests/workers/conftest.py``).
"""

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.http_server import HttpServer, Request, Response
from tests.processes import free_port, serving_on
from workers.carriers.base import Accepted, CarrierDriver, Submission

ROOT = Path(__file__).resolve().parents[1]
RECEIPTS_TOKEN = "test-receipts-token"
DRIVER_TIMEOUT_S = 5.0
WAIT_S = 5.0  # longest a test waits for receipts; they are due 50 ms after acceptance

DELIVERED = "+15551230000"  # "anything else": accepted, then delivered
UNREACHABLE = "+15005550001"
UNKNOWN = "+15005550002"
LANDLINE = "+15005550003"
FILTERED = "+15005550004"
UNKNOWN_ERROR = "+15005550005"
TRANSIENT = "+15005550007"
THROTTLED = "+15005550008"
SILENT = "+15005550009"
KINDS = ["simulator", "http"]


# --- the receipts receiver -------------------------------------------------------------------


class Receiver(HttpServer):
    """Records the receipt batches POSTed to it; can be told to answer 503 to the next N."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.failed = 0
        self._fail_remaining = 0

    @property
    def receipts_url(self) -> str:
        return self.url("/carrier/receipts")

    def answer(self, request: Request) -> Response:
        with self.lock:
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                self.failed += 1
                return Response(503)
            self.batches.append(json.loads(request.body)["receipts"])
            self.authorizations.append(request.headers.get("authorization"))
            return Response(200)

    def fail_next(self, count: int) -> None:
        with self.lock:
            self._fail_remaining = count

    def receipts(self, prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for batch in self.batches for r in batch if r["reference"].startswith(prefix)]


# --- the simulator process -------------------------------------------------------------------


@contextlib.contextmanager
def simulator_process(receipts_url: str, **options: float) -> Iterator[str]:
    """``run_simulator`` in a subprocess on a free loopback port; stopped on exit."""
    port = free_port()
    config = {"receipts_url": receipts_url, "receipts_token": RECEIPTS_TOKEN, **options}
    code = (
        "from workers.simulator.server import SimulatorConfig, run_simulator\n"
        f"run_simulator(SimulatorConfig(**{config!r}), '127.0.0.1', {port})\n"
    )
    with serving_on(subprocess.Popen([sys.executable, "-c", code], cwd=ROOT), port) as url:
        yield url


def submission(reference: str, to: str = DELIVERED, text: str = "hello") -> Submission:
    return Submission(
        reference=reference, to=to, from_="+15557654321", text=text, part=1, total=1, udh_ref=0
    )


def counters(simulator_url: str, prefix: str) -> dict[str, Any]:
    response = httpx.get(f"{simulator_url}/counters", params={"prefix": prefix}, timeout=5)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def eventually(check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(0.02)


def settle(driver: CarrierDriver, receiver: Receiver, simulator_url: str, prefix: str) -> None:
    """Wait until every receipt of ``prefix`` has been sent, a control one included.

    The control segment is accepted after everything the test submitted, so once its receipt is
    in and nothing of the prefix is pending, any receipt the simulator meant to send has arrived.
    """
    control = f"{prefix}-control"
    assert driver.submit([submission(control)]) == [Accepted(control, ANY_CARRIER_ID)]
    eventually(
        lambda: (
            any(r["reference"] == control for r in receiver.receipts(prefix))
            and counters(simulator_url, prefix)["receipts_pending"] == 0
        )
    )


class _AnyCarrierId(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("SIM") and len(other) == 27

    __hash__ = str.__hash__


ANY_CARRIER_ID = _AnyCarrierId("SIM…")
