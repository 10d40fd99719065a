"""A real HTTP receiver on loopback for status callbacks, whose behaviour each path chooses.

/ok            200
/slow          200 after 0-150 ms
/flaky/N       500 (Retry-After: 0) to the first N requests per webhook-id, then 200
/down          503 while ``down`` is set, then 200
/gone          410
/bad           400
/hang          holds the request until ``release`` is set (or 60 s), then 200
"""

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl

from tests.processes import free_port, serving


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str
    params: dict[str, str]
    at: float  # time.monotonic() when the request arrived


@dataclass
class Receiver:
    base: str
    requests: list[Received] = field(default_factory=list)
    down: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0  # requests being answered now
    most_in_flight: int = 0  # the most answered at once
    _tries: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def for_message(self, sid: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.params.get("MessageSid") == sid]

    def wait_for(self, sid: str, count: int, timeout_s: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.for_message(sid)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{sid}: {len(self.for_message(sid))} of {count} callbacks arrived")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body go out at once, as a real server's do

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length).decode()
            entry = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                             dict(parse_qsl(body, keep_blank_values=True)), time.monotonic())  # fmt: skip
            with receiver.lock:
                receiver.requests.append(entry)
                receiver._tries[entry.headers.get("webhook-id", "")] += 1
                tries = receiver._tries[entry.headers.get("webhook-id", "")]
                receiver.in_flight += 1
                receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
            try:
                self._answer(self.path, tries)
            finally:
                with receiver.lock:
                    receiver.in_flight -= 1

        def _answer(self, path: str, tries: int) -> None:
            status, headers = 200, {}
            if path.startswith("/slow"):
                time.sleep(random.uniform(0, 0.15))
            elif path.startswith("/flaky/") and tries <= int(path.rsplit("/", 1)[1]):
                status, headers = 500, {"retry-after": "0"}
            elif path.startswith("/down") and receiver.down.is_set():
                status = 503
            elif path.startswith("/gone"):
                status = 410
            elif path.startswith("/bad"):
                status = 400
            elif path.startswith("/hang"):
                receiver.release.wait(60)
            payload = b"ok"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(payload)

    return Handler


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}")
    with serving(port, _handler(receiver)):
        try:
            yield receiver
        finally:
            receiver.release.set()  # let held requests finish before the server stops
