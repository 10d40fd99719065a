"""A real HTTP media server on loopback for MMS tests; each path serves one case."""

import contextlib
import threading
import time
from collections.abc import Iterator

from tests.http_server import HttpServer, Request, Response, serving

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


class MediaServer(HttpServer):
    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()

    def answer(self, request: Request) -> Response:
        path = request.path
        if path in FILES:
            body, content_type = FILES[path]
            return Response(200, body, {"content-type": content_type})
        if path == "/404":
            return _text(404, b"missing")
        if path == "/flaky" and self.hits[path] == 1:
            return _text(500, b"oops")
        if path == "/flaky":
            return Response(200, JPEG, {"content-type": "image/jpeg"})
        if path == "/redirect":
            return _text(302, b"", location="/a.png")
        if path == "/dribble":
            return Response(200, self._dribble(), {"content-type": "image/jpeg"})
        return _text(404, b"no such case")

    def _dribble(self) -> Iterator[bytes]:
        """A JPEG's first bytes, then one more every 0.3 s until the server stops."""
        yield JPEG[:4]
        while not self.stop.wait(0.3):
            yield b"\x00"


def _text(status: int, body: bytes, **headers: str) -> Response:
    return Response(status, body, {"content-type": "text/plain", **headers})


@contextlib.contextmanager
def running_media_server() -> Iterator[MediaServer]:
    with serving(MediaServer()) as media:
        try:
            yield media
        finally:
            media.stop.set()  # ends the dribbling responses
            time.sleep(0.05)
