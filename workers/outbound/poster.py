"""Status callbacks' HTTP: one POST at a time per delivery thread, over connections kept alive
per destination, each to the address the SSRF guard checked (workers/outbound/guard.py).

The standard library's ``http.client`` rather than httpx: a callback is one small form POST
whose answer is read only for its status and an excerpt, and on this machine such a POST cost
0.40-0.45 ms of CPU through httpx against 0.13-0.15 ms through ``http.client``
(``uv run python scripts/bench_poster.py``). Media fetches keep httpx.

    Answer           the status, ``Retry-After``, the content type and the start of the body
    PostFailed       no answer: refused, reset, timed out, malformed, unresolvable; worth a retry
    OutboundRefused  (from the guard) the destination is not allowed; nothing was sent
"""

import http.client
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from workers.outbound.guard import (
    NO_DELAY,
    Network,
    OutboundRefused,
    Resolver,
    Unresolvable,
    checked_address,
    system_resolver,
)  # fmt: skip

Connect = Callable[[str, int, float], socket.socket]  # (address, port, timeout) → socket
KEPT = 4  # destinations one thread keeps a connection open to
CONNECT_TIMEOUT_S = 2.0  # at most; less when the whole timeout is shorter
EXCERPT_CHARS = 500  # of an answer's body, kept in the attempt log
EXCERPT_BYTES = EXCERPT_CHARS * 4  # enough for the excerpt in any UTF-8
LATE_READ_S = 0.05  # past the deadline, what an answer may still take to show it is complete
Key = tuple[str, str, int, str]  # scheme, host, port, checked address


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    text: str | None  # the body, as far as it was read
    content_type: str | None = None

    @property
    def excerpt(self) -> str | None:
        """What the attempt log keeps of the body."""
        return None if self.text is None else self.text[:EXCERPT_CHARS]


class PostFailed(Exception):
    """No answer came back; the endpoint may have got the request."""


class _Stale(Exception):
    """A kept connection turned out closed by the destination before it answered."""


def open_socket(address: str, port: int, timeout_s: float) -> socket.socket:
    sock = socket.create_connection((address, port), timeout_s)
    for option in NO_DELAY:  # http.client, too, writes a request's head and body apart
        sock.setsockopt(*option)
    return sock


class Poster:
    """One per delivery thread (not thread-safe): its kept connections, at most ``KEPT``."""

    def __init__(
        self, tls: ssl.SSLContext, timeout_s: float, *, resolver: Resolver = system_resolver,
        allow: Sequence[Network] | None = None,  # None: MYCPAAS_OUTBOUND_ALLOW_CIDRS
        connect: Connect = open_socket,
    ) -> None:  # fmt: skip
        self._tls, self._timeout_s = tls, timeout_s
        self._resolver, self._allow, self._connect = resolver, allow, connect
        self._kept: OrderedDict[Key, http.client.HTTPConnection] = OrderedDict()

    def post(
        self, url: str, body: bytes, headers: dict[str, str], read_bytes: int = EXCERPT_BYTES
    ) -> Answer:
        """POST ``body`` to ``url``; the answer's body is read for ``read_bytes`` at most and no
        later than the timeout after the start (an answer complete by then counts)."""
        deadline = time.monotonic() + self._timeout_s
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        try:
            port = parts.port or (443 if scheme == "https" else 80)
            head = {**headers, "host": host_header(scheme, host, port)}
        except (ValueError, UnicodeError) as exc:
            raise OutboundRefused(f"not a valid destination {url}: {exc}") from exc
        try:
            address = checked_address(scheme, host, port, self._resolver, self._allow)
        except Unresolvable as exc:
            raise PostFailed(str(exc)) from exc
        key = (scheme, host, port, address)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = self._kept.pop(key, None)
        if kept is not None:
            try:
                return self._exchange(key, kept, target, body, head, deadline, read_bytes,
                                      stale_ok=True)  # fmt: skip
            except _Stale:
                pass  # closed while idle: send once more, on a new connection
        connection = self._open(scheme, host, address, port)
        return self._exchange(key, connection, target, body, head, deadline, read_bytes,
                              stale_ok=False)  # fmt: skip

    def close(self) -> None:
        for connection in self._kept.values():
            connection.close()
        self._kept.clear()

    def _open(self, scheme: str, host: str, address: str, port: int) -> http.client.HTTPConnection:
        try:
            sock = self._connect(address, port, min(CONNECT_TIMEOUT_S, self._timeout_s))
            if scheme == "https":  # the certificate is checked against the URL's host name
                sock = self._tls.wrap_socket(sock, server_hostname=host)
        except OSError as exc:
            raise PostFailed(f"{type(exc).__name__}: {exc}") from exc
        sock.settimeout(self._timeout_s)
        connection = http.client.HTTPConnection(address, port, timeout=self._timeout_s)
        connection.sock = sock
        connection.auto_open = 0  # never reconnect by itself: it would skip the guard and TLS
        return connection

    def _exchange(
        self, key: Key, connection: http.client.HTTPConnection, target: str, body: bytes,
        head: dict[str, str], deadline: float, read_bytes: int, *, stale_ok: bool,
    ) -> Answer:  # fmt: skip
        sock = cast(socket.socket, connection.sock)
        answered = False
        try:
            sock.settimeout(self._timeout_s)
            connection.request("POST", target, body=body, headers=head)
            response = connection.getresponse()
            answered = True
            text, complete = read_excerpt(response, sock, deadline, read_bytes)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if stale_ok and not answered and isinstance(exc, STALE_ERRORS):
                raise _Stale from exc
            raise PostFailed(f"{type(exc).__name__}: {exc}") from exc
        if complete and not response.will_close:
            response.close()  # read to its end: the connection may carry the next request
            self._kept[key] = connection
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)[1].close()
        else:
            connection.close()
        return Answer(response.status, response.getheader("retry-after"), text,
                      response.getheader("content-type"))  # fmt: skip


# What a kept connection the destination closed while idle looks like on the next request.
STALE_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def host_header(scheme: str, host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host.encode("idna").decode("ascii")
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


def read_excerpt(
    response: http.client.HTTPResponse, sock: socket.socket, deadline: float,
    limit: int = EXCERPT_BYTES,
) -> tuple[str | None, bool]:  # fmt: skip
    """The start of the answer's body, and whether all of it was read. It is read no further
    than ``limit`` bytes and no later than ``deadline``: an endpoint that trickles its answer cannot
    hold a delivery for long, while one that was complete, however late this thread got to it,
    counts (raising a timeout for it would deliver it twice)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and not finished(response):
        late = time.monotonic() > deadline
        sock.settimeout(LATE_READ_S if late else deadline - time.monotonic())
        chunk = response.read1(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if late and not finished(response):
            if response.read1(1):  # it is still coming
                raise TimeoutError("the answer took longer than the callback timeout")
            break
    complete = finished(response)
    if not size:
        return None, complete
    charset = response.msg.get_content_charset() or "utf-8"
    try:
        text = b"".join(chunks).decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        text = b"".join(chunks).decode("utf-8", "replace")
    return text, complete


def finished(response: http.client.HTTPResponse) -> bool:
    """All of the body was read (a known length reaches 0 before the connection is let go)."""
    return response.isclosed() or response.length == 0
