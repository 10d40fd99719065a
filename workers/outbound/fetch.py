"""Fetching one customer media URL safely: guarded, redirects by hand, bounded, sniffed.

FetchError                 the URL gave no usable media
├── TransientFetchError    timeout, connection error, 429 or 5xx: may work later
└── PermanentFetchError    refused destination, 4xx, too many redirects: will not
    ├── TooLarge           over the byte budget (11751)
    └── UnsupportedType    bytes are not JPEG, PNG, GIF or MP4 (12300)
"""

import hashlib
import threading
import time
from dataclasses import dataclass

import httpx

from workers.outbound.guard import OutboundRefused

MAX_REDIRECTS = 3  # each hop's destination is checked again by the guard
SNIFF_BYTES = 16  # enough for every signature below


class FetchError(Exception):
    code = 11200  # Twilio: HTTP retrieval failure


class TransientFetchError(FetchError):
    pass


class PermanentFetchError(FetchError):
    pass


class TooLarge(PermanentFetchError):
    code = 11751


class UnsupportedType(PermanentFetchError):
    code = 12300


class Budget:
    """Bytes left for one message's media, shared by its parallel fetches."""

    def __init__(self, total: int) -> None:
        self.left = total
        self._lock = threading.Lock()

    def take(self, size: int, url: str) -> None:
        with self._lock:
            if size > self.left:
                raise TooLarge(f"{url}: the message's media exceed the byte budget")
            self.left -= size


@dataclass(frozen=True)
class Fetched:
    url: str
    content_type: str
    content: bytes
    sha256: str


def sniff(head: bytes) -> str | None:
    """The media type the bytes say, for the types carriers take: JPEG, PNG, GIF, MP4."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    return None


def fetch(client: httpx.Client, url: str, budget: Budget, deadline: float) -> Fetched:
    """GET ``url`` through ``client`` (whose transport is the SSRF guard), within a byte budget
    and a monotonic ``deadline``; redirects followed here, each hop checked again."""
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            with client.stream("GET", url) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise PermanentFetchError(f"redirect without Location from {url}")
                    url = str(response.url.join(location))
                    continue
                _check_status(response.status_code, url)
                body = _read(response, budget, deadline, url)
        except OutboundRefused as exc:
            raise PermanentFetchError(str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise TransientFetchError(f"timeout fetching {url}") from exc
        except httpx.HTTPError as exc:
            raise TransientFetchError(f"{type(exc).__name__} fetching {url}: {exc}") from exc
        kind = sniff(body[:SNIFF_BYTES])
        if kind is None:
            declared = response.headers.get("content-type", "none")
            raise UnsupportedType(f"{url}: the bytes are not JPEG, PNG, GIF or MP4 ({declared})")
        return Fetched(url, kind, body, hashlib.sha256(body).hexdigest())
    raise PermanentFetchError(f"more than {MAX_REDIRECTS} redirects from {url}")


def _check_status(code: int, url: str) -> None:
    if code == 429 or code >= 500:
        raise TransientFetchError(f"HTTP {code} from {url}")
    if code >= 300:
        raise PermanentFetchError(f"HTTP {code} from {url}")


def _read(response: httpx.Response, budget: Budget, deadline: float, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > budget.left:
        raise TooLarge(f"{url} is {declared} bytes; {budget.left} left in the budget")
    chunks: list[bytes] = []
    for chunk in response.iter_bytes():
        budget.take(len(chunk), url)
        chunks.append(chunk)
        if time.monotonic() > deadline:  # a server dribbling bytes forever
            raise TransientFetchError(f"{url} took longer than the total time allowed")
    return b"".join(chunks)
