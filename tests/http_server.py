"""HTTP servers of the tests' own on loopback, each told apart only by how it answers.

A test server subclasses ``HttpServer`` and writes ``answer``; this module does the rest: the
port and the serving threads, reading the request, writing the response, and counting what
arrived (every request, per path, and how many were being answered at once).
"""

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar
from urllib.parse import parse_qsl

POLL_INTERVAL_S = 0.05  # how long stopping a server may wait for its loop to notice


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when the request arrived

    @cached_property
    def params(self) -> dict[str, str]:
        """The form-encoded body; cached, as tests look for one message among many requests."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""  # chunks are sent as they come, without a length
    headers: dict[str, str] = field(default_factory=dict)


class HttpServer:
    """What every test server knows of the requests it got; ``answer`` is its behaviour."""

    def __init__(self) -> None:
        self.base = ""  # http://127.0.0.1:<port>, once serving
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.hits: Counter[str] = Counter()  # requests per path
        self.in_flight = 0  # requests being answered now
        self.most_in_flight = 0  # the most answered at once

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def answer(self, request: Request) -> Response:
        raise NotImplementedError

    def _arrived(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)
            self.hits[request.path] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _answered(self) -> None:
        with self.lock:
            self.in_flight -= 1


Server = TypeVar("Server", bound=HttpServer)


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    """``server`` on a free loopback port, in threads of this process, while the block runs."""
    http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    http.daemon_threads = True
    server.base = f"http://127.0.0.1:{http.server_address[1]}"
    thread = threading.Thread(
        target=http.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()
        thread.join(5)


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body go out at once, as a real server's do

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def do_GET(self) -> None:
            length = int(self.headers.get("content-length", 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Request(self.command, self.path, headers, self.rfile.read(length),
                              time.monotonic())  # fmt: skip
            server._arrived(request)
            counted = True
            try:
                response = server.answer(request)
                if isinstance(response.body, bytes):
                    # Out of flight before it is written: the client may read it and send its
                    # next request before this thread runs again, and must not seem to exceed
                    # its cap. (A streamed body stays in flight while it streams.)
                    server._answered()
                    counted = False
                self._send(response)
            finally:
                if counted:
                    server._answered()

        do_POST = do_GET

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if isinstance(response.body, bytes):
                self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            chunks = [response.body] if isinstance(response.body, bytes) else response.body
            with contextlib.suppress(OSError):  # the client gave up; the test says whether it may
                for chunk in chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()

    return Handler
