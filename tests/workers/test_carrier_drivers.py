"""The HTTP carrier drivers' translation of what the simulator never produces (connect errors,
garbage answers, refused credentials), with ``httpx.MockTransport``; ``Retry-After`` parsing and
the choice of driver by name."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.carrier_simulator import KINDS, submission
from workers.carriers.base import (
    Accepted,
    CarrierDriver,
    CredentialsRefused,
    Deferred,
    MalformedAnswer,
    PermanentCarrierError,
    Rejected,
    Submission,
    TransientCarrierError,
    parse_retry_after,
)
from workers.carriers.factory import make_driver
from workers.carriers.http import HttpCarrierDriver
from workers.carriers.simulator import SimulatorCarrierDriver

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
