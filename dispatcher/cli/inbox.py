"""The dev mode's callback inbox: a local endpoint that prints every status callback it gets,
and the dev number's inbound webhook (answered 204: no reply).

``POST`` on any path records the callback, checks its ``X-Twilio-Signature`` with the dev
account's token and prints one line; ``GET /`` lists what arrived (newest last) as JSON.
"""

import hmac
import json
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from workers.webhooks.signing import twilio_signature

KEEP = 1000  # callbacks the inbox remembers for GET


class Inbox:
    def __init__(self, port: int, auth_token: str, say: Callable[[str], None]) -> None:
        self.url = f"http://127.0.0.1:{port}/inbox"
        self.received: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._token = auth_token
        self._say = say
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Inbox":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def receive(self, url: str, params: dict[str, str], headers: dict[str, str]) -> None:
        expected = twilio_signature(self._token, url, params)
        signed = hmac.compare_digest(expected, headers.get("x-twilio-signature", ""))
        entry = {"params": params, "webhook_id": headers.get("webhook-id"), "signed": signed}
        self.received.append(entry)
        error = f" error {params['ErrorCode']}" if "ErrorCode" in params else ""
        what = f"{params.get('MessageStatus', '?')}{error}"
        if params.get("SmsStatus") == "received":  # the dev number's webhook
            what = f"received from {params.get('From', '?')}: {params.get('Body', '')!r}"
        self._say(
            f"callback {params.get('MessageSid', '?')} {what}"
            f"  (signature {'ok' if signed else 'INVALID'})"
        )


def _handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            headers = {name.lower(): value for name, value in self.headers.items()}
            inbox.receive(f"{inbox.url.rsplit('/', 1)[0]}{self.path}", dict(parse_qsl(body)),
                          headers)  # fmt: skip
            self._answer(204, b"")

        def do_GET(self) -> None:
            self._answer(200, json.dumps(list(inbox.received)).encode(), "application/json")

        def _answer(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # the receive line says it all
            pass

    return Handler
