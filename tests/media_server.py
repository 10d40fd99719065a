"""A real HTTP media server on loopback for MMS tests; each path serves one case."""

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

from tests.processes import free_port, serving

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"j" * 2000
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"p" * 2000
GIF = b"GIF89a" + b"g" * 2000
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"m" * 2000
HTML = b"<!doctype html><html><body>not an image</body></html>"
FIVE_MB = 5 * 1024 * 1024

FILES = {
    "/a.jpg": (JPEG, "image/jpeg"),
    "/a.png": (PNG, "image/png"),
    "/a.gif": (GIF, "image/gif"),
    "/a.mp4": (MP4, "video/mp4"),
    "/png-as-jpeg": (PNG, "image/jpeg"),
    "/html-as-png": (HTML, "image/png"),
    "/big": (JPEG[:4] + b"\x00" * (FIVE_MB + 1 - 4), "image/jpeg"),
}


class MediaServer:
    def __init__(self, base: str) -> None:
        self.base = base
        self.hits: Counter[str] = Counter()
        self.stop = threading.Event()

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _handler(server: MediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            server.hits[self.path] += 1
            if self.path in FILES:
                self._send(200, *FILES[self.path])
            elif self.path == "/404":
                self._send(404, b"missing", "text/plain")
            elif self.path == "/flaky":
                if server.hits[self.path] == 1:
                    self._send(500, b"oops", "text/plain")
                else:
                    self._send(200, JPEG, "image/jpeg")
            elif self.path == "/redirect":
                self._send(302, b"", "text/plain", location="/a.png")
            elif self.path == "/dribble":
                self.send_response(200)
                self.send_header("content-type", "image/jpeg")
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(JPEG[:4])
                    while not server.stop.wait(0.3):
                        self.wfile.write(b"\x00")
                        self.wfile.flush()
            else:
                self._send(404, b"no such case", "text/plain")

    return Handler


@contextlib.contextmanager
def running_media_server() -> Iterator[MediaServer]:
    port = free_port()
    media = MediaServer(f"http://127.0.0.1:{port}")
    with serving(port, _handler(media)):
        try:
            yield media
        finally:
            media.stop.set()  # ends the dribbling responses
            time.sleep(0.05)
