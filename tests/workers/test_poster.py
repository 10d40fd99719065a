"""The callbacks' HTTP client: sent only where the guard allows, to the address it checked,
over connections kept per destination; an answer is read no later than its timeout.

Destinations outside loopback are never connected to: ``connect`` is replaced, either by one
that fails the test or by one end of a socket pair whose other end answers."""

import contextlib
import http.client
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from tests.workers.test_outbound import NAMES, PRIVATE_URLS, stub_resolver
from workers.outbound.guard import OutboundRefused, allowed_networks
from workers.outbound.poster import Answer, Poster, PostFailed, read_excerpt

TLS = ssl.create_default_context()
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def read_request(sock: socket.socket) -> bytes:
    """One whole request (head, then as much body as its Content-Length says); b"" when the
    peer closed first. ``http.client`` writes head and body apart: one ``recv`` may get half."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    declared = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    length = int(declared[1]) if declared else 0
    while len(data) < len(head) + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


def must_not_connect(address: str, port: int, _timeout_s: float) -> socket.socket:
    pytest.fail(f"the guard let a request through to {address}:{port}")


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_destinations_are_refused_before_connecting(url: str) -> None:
    poster = Poster(TLS, 3, resolver=stub_resolver, allow=(), connect=must_not_connect)
    with pytest.raises(OutboundRefused):
        poster.post(url, b"x", {})


def test_a_public_name_is_sent_to_the_address_that_was_checked_under_its_own_name() -> None:
    # given: "public.test" resolves (stub) to a public address; connecting to it gives one end
    # of a socket pair whose other end answers
    connected: list[tuple[str, int]] = []
    heads: list[bytes] = []

    def connect(address: str, port: int, _timeout_s: float) -> socket.socket:
        ours, theirs = socket.socketpair()
        connected.append((address, port))

        def answer() -> None:
            with theirs:
                heads.append(read_request(theirs))
                theirs.sendall(OK)

        threading.Thread(target=answer, daemon=True).start()
        return ours

    poster = Poster(TLS, 3, resolver=stub_resolver, allow=(), connect=connect)
    # when
    answer = poster.post("http://public.test:8080/hook?a=1", b"x=1", {"webhook-id": "msg_1"})
    # then: no second lookup; the checked address, the URL's name in Host
    assert (answer.status, answer.excerpt) == (200, "ok")
    assert connected == [(NAMES["public.test"][0], 8080)]
    head = heads[0].decode()
    assert head.startswith("POST /hook?a=1 HTTP/1.1\r\n")
    assert "\r\nhost: public.test:8080\r\n" in head.lower()
    assert head.endswith("\r\n\r\nx=1")
    poster.close()


def test_a_name_that_fails_to_resolve_is_a_failure_to_retry_not_a_refusal() -> None:
    def failing_resolver(host: str, _port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    poster = Poster(TLS, 3, resolver=failing_resolver, allow=(), connect=must_not_connect)
    with pytest.raises(PostFailed, match="cannot resolve"):
        poster.post("http://flaky-dns.test/status", b"x", {})


@pytest.fixture
def idle_closing_server() -> Iterator[tuple[str, list[int]]]:
    """Loopback: answers two requests on its first connection with keep-alive, then closes it
    (as a server's idle timeout does), and one on the next. Yields its URL and the connection
    each request came on."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []

    def serve() -> None:
        for connection_number, requests in enumerate((2, 1)):
            connection, _ = listener.accept()
            with connection:
                for _ in range(requests):
                    if read_request(connection):
                        seen.append(connection_number)
                        connection.sendall(OK)
                time.sleep(0.05)

    threading.Thread(target=serve, daemon=True).start()
    with listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/cb", seen


def test_a_connection_is_kept_and_one_closed_while_idle_is_replaced_once(
    idle_closing_server: tuple[str, list[int]],
) -> None:
    url, seen = idle_closing_server
    poster = Poster(TLS, 3, allow=allowed_networks("127.0.0.0/8"))
    # given: two requests answered on one connection, which the server then closes
    assert [poster.post(url, b"a", {}).status, poster.post(url, b"b", {}).status] == [200, 200]
    time.sleep(0.2)
    # when / then: the next request notices and goes out again, once, on a new connection
    assert poster.post(url, b"c", {}).status == 200
    assert seen == [0, 0, 1]
    poster.close()


@contextlib.contextmanager
def answered(raw: bytes) -> Iterator[tuple[http.client.HTTPResponse, socket.socket]]:
    """An answer of ``raw`` bytes on one end of a socket pair, its head read."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(raw)
        response = http.client.HTTPResponse(ours)
        response.begin()
        yield response, ours
        response.close()


def test_an_answer_complete_when_read_late_counts() -> None:
    # given: a complete answer this thread gets to only after the deadline
    with answered(OK) as (response, sock):
        # when / then: delivered, not retried (a retry would deliver it twice)
        assert read_excerpt(response, sock, deadline=time.monotonic() - 1) == ("ok", True)


def test_an_answer_still_coming_after_the_deadline_times_out() -> None:
    started = time.monotonic()
    trickling = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na"
    with answered(trickling) as (response, sock), pytest.raises(TimeoutError):
        read_excerpt(response, sock, deadline=started + 0.2)
    assert time.monotonic() - started < 1


def test_the_excerpt_is_decoded_in_the_answers_charset_and_cut() -> None:
    body = "é".encode("latin-1") * 2500
    head = "HTTP/1.1 400 Bad\r\nContent-Type: text/plain; charset=latin-1\r\n"
    raw = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    with answered(raw) as (response, sock):
        text, complete = read_excerpt(response, sock, deadline=time.monotonic() + 1)
    assert Answer(400, None, text).excerpt == "é" * 500
    assert complete is False  # the rest is left unread: the connection is not kept
