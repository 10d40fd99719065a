"""The SSRF guard refuses before any connection: a resolver stub says where names point, and
the transport behind the guard fails the test if it is ever asked to connect."""

import socket

import httpx
import pytest

from workers.outbound.guard import GuardedTransport, OutboundRefused, allowed_networks

NAMES = {
    "internal.test": ["10.0.0.5"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.216.34", "192.168.1.10"],  # one public, one private: refused
    "cgnat.test": ["100.64.3.4"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "public.test": ["93.184.216.34"],
}

PRIVATE_URLS = [
    "http://internal.test/status",
    "http://metadata.test/latest/meta-data/",
    "https://mixed.test/",
    "http://cgnat.test/",
    "http://mapped.test/",
    "http://127.0.0.1:8080/",
    "http://[::1]/",
    "http://169.254.169.254/",
    "http://[fe80::1]/",
    "http://224.0.0.1/",
    "http://0.0.0.0/",
    "http://[::ffff:10.1.2.3]/",
]


def stub_resolver(host: str, _port: int) -> list[str]:
    return NAMES[host]


class MustNotConnect(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pytest.fail(f"the guard let a request through to {request.url}")


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_destinations_are_refused_before_connecting(url: str) -> None:
    # given
    client = httpx.Client(transport=GuardedTransport(MustNotConnect(), stub_resolver, allow=()))
    # when / then
    with pytest.raises(OutboundRefused):
        client.post(url, content=b"x")


def test_public_destination_is_sent_to_the_address_that_was_checked() -> None:
    # given: the transport behind the guard records instead of connecting
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    guarded = GuardedTransport(httpx.MockTransport(record), stub_resolver, allow=())
    # when
    response = httpx.Client(transport=guarded).post("https://public.test/hook?a=1", content=b"x")
    # then: no second lookup: the request goes to the checked IP, named as the host
    assert response.status_code == 204
    assert seen[0].url.host == "93.184.216.34"
    assert seen[0].url.path == "/hook"
    assert seen[0].headers["host"] == "public.test"
    assert seen[0].extensions["sni_hostname"] == "public.test"


def test_allow_list_lets_a_private_range_through() -> None:
    seen: list[str] = []
    guarded = GuardedTransport(
        httpx.MockTransport(lambda r: seen.append(str(r.url)) or httpx.Response(200)),
        stub_resolver,
        allow=allowed_networks("10.0.0.0/8"),
    )
    httpx.Client(transport=guarded).get("http://internal.test/")
    assert seen == ["http://10.0.0.5/"]


@pytest.mark.parametrize("url", ["ftp://public.test/", "file:///etc/passwd"])
def test_other_schemes_are_refused(url: str) -> None:
    client = httpx.Client(transport=GuardedTransport(MustNotConnect(), stub_resolver, allow=()))
    with pytest.raises((OutboundRefused, httpx.UnsupportedProtocol)):
        client.get(url)


def test_a_name_that_fails_to_resolve_is_a_connect_error_to_retry_not_a_refusal() -> None:
    # given: DNS answers "try again" (EAI_AGAIN)
    def failing_resolver(host: str, _port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    client = httpx.Client(transport=GuardedTransport(MustNotConnect(), failing_resolver, allow=()))
    # when / then: callbacks and media fetches retry a connect error; a refusal is final
    with pytest.raises(httpx.ConnectError, match="cannot resolve"):
        client.post("http://flaky-dns.test/status", content=b"x")
