"""A real HTTP receiver on loopback for status callbacks, whose behaviour each path chooses.

/ok            200
/slow          200 after 0-150 ms
/flaky/N       500 (Retry-After: 0) to the first N requests per webhook-id, then 200
/down          503 while ``down`` is set, then 200
/gone          410
/bad           400
/hang          holds the request until ``release`` is set (or 60 s), then 200
/twiml/reply   200 with TwiML asking for the reply "got it"
/twiml/bad     200 with XML that does not parse
"""

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

from tests.http_server import HttpServer, Request, Response, serving

TWIML_REPLY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Message>got it</Message></Response>'
)


class Receiver(HttpServer):
    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.release = threading.Event()
        self._tries: Counter[str] = Counter()  # requests per webhook-id

    def for_message(self, sid: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.params.get("MessageSid") == sid]

    def wait_for(self, sid: str, count: int, timeout_s: float = 30) -> list[Request]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.for_message(sid)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{sid}: {len(self.for_message(sid))} of {count} callbacks arrived")

    def answer(self, request: Request) -> Response:
        path = request.path
        with self.lock:
            self._tries[request.headers.get("webhook-id", "")] += 1
            tries = self._tries[request.headers.get("webhook-id", "")]
        status, headers = 200, {}
        if path.startswith("/slow"):
            time.sleep(random.uniform(0, 0.15))
        elif path.startswith("/flaky/") and tries <= int(path.rsplit("/", 1)[1]):
            status, headers = 500, {"retry-after": "0"}
        elif path.startswith("/down") and self.down.is_set():
            status = 503
        elif path.startswith("/gone"):
            status = 410
        elif path.startswith("/bad"):
            status = 400
        elif path.startswith("/hang"):
            self.release.wait(60)
        elif path.startswith("/twiml/"):
            xml = TWIML_REPLY if path.startswith("/twiml/reply") else b"<Response><Message>"
            return Response(200, xml, {"content-type": "text/xml"})
        return Response(status, b"ok", headers)


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as receiver:
        try:
            yield receiver
        finally:
            receiver.release.set()  # let held requests finish before the server stops
