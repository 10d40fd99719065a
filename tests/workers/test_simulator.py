"""The carrier simulator as a real process, driven through the real drivers.

The simulator runs as a subprocess on a loopback port and posts its receipts to a real HTTP
receiver in a thread of this process. Every test uses references under its own prefix, so
tests sharing one simulator never see each other's counts or receipts. The drivers' translation
of failures the simulator never produces (connect errors, garbage answers) is tested at the end
with ``httpx.MockTransport``.
"""

import contextlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http_server import HttpServer, Request, Response, serving
from tests.processes import free_port, stop, wait_http
from workers.carriers.base import (
    Accepted,
    CarrierDriver,
    CredentialsRefused,
    Deferred,
    MalformedAnswer,
    PermanentCarrierError,
    Rejected,
    Result,
    Submission,
    TransientCarrierError,
    parse_retry_after,
)
from workers.carriers.factory import make_driver
from workers.carriers.http import HttpCarrierDriver
from workers.carriers.simulator import SimulatorCarrierDriver

ROOT = Path(__file__).resolve().parents[2]
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
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc=proc)
        yield url
    finally:
        stop(proc)


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


# --- configuration: latency, receipt retries, volume -----------------------------------------


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


# --- drivers' translation of failures (MockTransport) ----------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def mock_driver(kind: str, handler: Handler, token: str | None = None) -> CarrierDriver:
    transport = httpx.MockTransport(handler)
    if kind == "simulator":
        return SimulatorCarrierDriver("http://carrier.test", 1.0, token=token, transport=transport)
    return HttpCarrierDriver("http://carrier.test", 1.0, token=token, transport=transport)


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def test_simulator_driver_sends_the_wire_shape_with_the_token() -> None:
    # given
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={"results": [{"reference": "SMa-1", "status": "accepted", "carrier_id": "C1"}]},
        )

    driver = mock_driver("simulator", handler, token="secret")
    sent = Submission("SMa-1", "+1555", "+1666", "hi", 1, 2, 77, ("https://m.test/a.png",))
    # when
    results = driver.submit([sent])
    driver.close()
    # then
    assert results == [Accepted("SMa-1", "C1")]
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/submit")
    assert request.headers["Authorization"] == "Bearer secret"
    assert json.loads(request.content) == {
        "submissions": [
            {
                "reference": "SMa-1",
                "to": "+1555",
                "from": "+1666",
                "text": "hi",
                "part": 1,
                "total": 2,
                "udh_ref": 77,
                "media": ["https://m.test/a.png"],
            }
        ]
    }


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
    ],
)
def test_simulator_driver_raises_transient_for_transport_failures(exc: Exception) -> None:
    # given
    driver = mock_driver("simulator", raising(exc))
    # when
    with pytest.raises(TransientCarrierError) as raised:
        driver.submit([submission("SMa-1")])
    driver.close()
    # then
    assert raised.value.__cause__ is exc
    assert raised.value.retry_after_s is None


@pytest.mark.parametrize(
    ("response", "error", "status_code", "retry_after_s"),
    [
        (httpx.Response(429, headers={"Retry-After": "3"}), TransientCarrierError, 429, 3.0),
        (httpx.Response(503), TransientCarrierError, 503, None),
        (httpx.Response(400, text="bad"), PermanentCarrierError, 400, None),
        (httpx.Response(401), CredentialsRefused, 401, None),
        (httpx.Response(403), CredentialsRefused, 403, None),
        (httpx.Response(302, headers={"Location": "/x"}), PermanentCarrierError, 302, None),
        (httpx.Response(200, text="<html>"), MalformedAnswer, 200, None),
        (httpx.Response(200, json={"results": []}), MalformedAnswer, 200, None),
        (
            httpx.Response(
                200,
                json={
                    "results": [{"reference": "SMother-1", "status": "accepted", "carrier_id": "C"}]
                },
            ),
            MalformedAnswer,
            None,
            None,
        ),
        (
            httpx.Response(200, json={"results": [{"reference": "SMa-1", "status": "queued"}]}),
            MalformedAnswer,
            None,
            None,
        ),
        (
            httpx.Response(200, json={"results": [{"reference": "SMa-1", "status": "accepted"}]}),
            MalformedAnswer,
            None,
            None,
        ),
    ],
)
def test_simulator_driver_translates_whole_request_answers(
    response: httpx.Response,
    error: type[Exception],
    status_code: int | None,
    retry_after_s: float | None,
) -> None:
    # given
    driver = mock_driver("simulator", lambda request: response)
    # when
    with pytest.raises(error) as raised:
        driver.submit([submission("SMa-1")])
    driver.close()
    # then
    assert isinstance(raised.value, PermanentCarrierError | TransientCarrierError)
    assert raised.value.status_code == status_code
    if isinstance(raised.value, TransientCarrierError):
        assert raised.value.retry_after_s == retry_after_s


def test_malformed_answer_is_transient() -> None:
    assert issubclass(MalformedAnswer, TransientCarrierError)


def test_simulator_driver_sends_nothing_for_an_empty_batch() -> None:
    # given
    driver = mock_driver("simulator", raising(AssertionError("no request expected")))
    # when
    results = driver.submit([])
    driver.close()
    # then
    assert results == []


def test_http_driver_maps_each_answer_to_its_own_result() -> None:
    # given
    answers = {
        "SMa-1": httpx.Response(201, json={"carrier_id": "C1"}),
        "SMa-2": httpx.Response(400, json={"error_code": 30007, "message": "filtered"}),
        "SMa-3": httpx.Response(404),
        "SMa-4": httpx.Response(503, headers={"Retry-After": "7"}),
        "SMa-5": httpx.Response(500),
        "SMa-6": httpx.Response(200, json={"queued": True}),
        "SMa-7": httpx.Response(200, json={"carrier_id": "C7"}),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return answers[json.loads(request.content)["reference"]]

    driver = mock_driver("http", handler)
    # when
    results = driver.submit([submission(reference) for reference in answers])
    driver.close()
    # then
    assert results == [
        Accepted("SMa-1", "C1"),
        Rejected("SMa-2", 30007, "filtered"),
        Rejected("SMa-3", 30008, "carrier refused: HTTP 404"),
        Deferred("SMa-4", 7.0, "carrier answered HTTP 503"),
        Deferred("SMa-5", 1.0, "carrier answered HTTP 500"),
        Deferred("SMa-6", 1.0, "HTTP 200 without a carrier_id"),
        Accepted("SMa-7", "C7"),
    ]


@pytest.mark.parametrize(
    ("handler", "retry_after_s"),
    [
        (lambda request: httpx.Response(429, headers={"Retry-After": "4"}), 4.0),
        (raising(httpx.ConnectError("refused")), 1.0),
        (raising(httpx.ConnectTimeout("slow")), 1.0),
        (lambda request: httpx.Response(401), 1.0),
    ],
)
def test_http_driver_defers_the_rest_of_the_call_unsent_when_the_gateway_is_out(
    handler: Handler, retry_after_s: float
) -> None:
    # given
    calls: list[str] = []

    def counting(request: httpx.Request) -> httpx.Response:
        reference = json.loads(request.content)["reference"]
        calls.append(reference)
        if reference == "SMa-1":
            return httpx.Response(200, json={"carrier_id": "C1"})
        return handler(request)

    driver = mock_driver("http", counting)
    # when
    results = driver.submit([submission(f"SMa-{n}") for n in (1, 2, 3, 4)])
    driver.close()
    # then
    assert calls == ["SMa-1", "SMa-2"]
    assert results[0] == Accepted("SMa-1", "C1")
    assert [type(r) for r in results[1:]] == [Deferred, Deferred, Deferred]
    assert {r.retry_after_s for r in results[1:] if isinstance(r, Deferred)} == {retry_after_s}


@pytest.mark.parametrize("status", [401, 403])
def test_http_driver_raises_when_the_gateway_refuses_our_credentials(status: int) -> None:
    # given: a gateway that refuses the platform's token: no message is at fault
    driver = mock_driver("http", lambda request: httpx.Response(status, text="bad token"))
    # when / then: the whole call fails, to be retried, instead of rejecting each segment
    with pytest.raises(CredentialsRefused) as raised:
        driver.submit([submission("SMa-1"), submission("SMa-2")])
    driver.close()
    assert raised.value.status_code == status


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            httpx.Response(
                200, json={"reference": "SMa-1", "carrier_id": "C1", "status": "accepted"}
            ),
            Accepted("SMa-1", "C1"),
        ),
        (
            httpx.Response(
                200, json={"reference": "SMa-1", "carrier_id": None, "status": "rejected"}
            ),
            None,
        ),
        (httpx.Response(404), None),
    ],
)
def test_lookup_reads_the_answer(
    kind: str, answer: httpx.Response, expected: Accepted | None
) -> None:
    # given
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return answer

    driver = mock_driver(kind, handler)
    # when
    found = driver.lookup("SMa-1")
    driver.close()
    # then
    assert found == expected
    assert paths == ["/submissions/SMa-1"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(500), TransientCarrierError),
        (httpx.Response(401), CredentialsRefused),
        (httpx.Response(400, text="bad reference"), PermanentCarrierError),
        (httpx.Response(200, json={"status": "accepted"}), MalformedAnswer),
    ],
)
def test_lookup_raises_for_a_failed_request(answer: httpx.Response, error: type[Exception]) -> None:
    # given
    driver = mock_driver("http", lambda request: answer)
    # when / then
    with pytest.raises(error):
        driver.lookup("SMa-1")
    driver.close()


def test_lookup_raises_transient_when_unreachable() -> None:
    # given
    exc = httpx.ConnectError("refused")
    driver = mock_driver("simulator", raising(exc))
    # when
    with pytest.raises(TransientCarrierError) as raised:
        driver.lookup("SMa-1")
    driver.close()
    # then
    assert raised.value.__cause__ is exc


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("999999", 3600.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_make_driver_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="smpp"):
        make_driver("smpp", "http://carrier.test", 1.0)
