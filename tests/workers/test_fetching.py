"""Media fetching behind the SSRF guard: redirects re-checked per hop, refused before any
connection (a resolver stub and a mock origin; nothing leaves the process)."""

import time

import httpx
import pytest

from tests.media_server import GIF, JPEG, MP4, PNG
from workers.outbound.fetch import (
    Budget,
    PermanentFetchError,
    TooLarge,
    UnsupportedType,
    fetch,
    sniff,
)
from workers.outbound.guard import GuardedTransport

NAMES = {"public.test": ["93.184.216.34"], "internal.test": ["192.168.0.7"]}


def origin(request: httpx.Request) -> httpx.Response:
    """The only server there is: a public host (by the stub's word) that redirects."""
    assert request.url.host == "93.184.216.34", f"connected to {request.url}"
    targets = {
        "/to-loopback": "http://127.0.0.1/a.jpg",
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-private-name": "http://internal.test/a.jpg",
        "/to-ipv6-loopback": "http://[::1]/a.jpg",
        "/loop": "/loop",
    }
    if request.url.path in targets:
        return httpx.Response(302, headers={"location": targets[request.url.path]})
    if request.url.path == "/a.png":
        return httpx.Response(200, content=PNG, headers={"content-type": "image/jpeg"})
    return httpx.Response(200, content=b"<html></html>", headers={"content-type": "image/png"})


def client() -> httpx.Client:
    guard = GuardedTransport(httpx.MockTransport(origin), lambda h, _p: NAMES[h], allow=())
    return httpx.Client(transport=guard, follow_redirects=False)


def get(url: str, budget: int = 5_000_000) -> object:
    return fetch(client(), url, Budget(budget), time.monotonic() + 5)


@pytest.mark.parametrize(
    "path", ["/to-loopback", "/to-metadata", "/to-private-name", "/to-ipv6-loopback", "/loop"]
)
def test_redirects_to_private_places_are_refused(path: str) -> None:
    with pytest.raises(PermanentFetchError) as refused:
        get(f"http://public.test{path}")
    assert refused.value.code == 11200


@pytest.mark.parametrize("url", ["http://internal.test/a.jpg", "http://[::1]/a.jpg",
                                 "http://169.254.169.254/", "http://[::ffff:127.0.0.1]/"])  # fmt: skip
def test_private_destinations_are_refused(url: str) -> None:
    with pytest.raises(PermanentFetchError):
        get(url)


def test_type_comes_from_the_bytes() -> None:
    fetched = get("http://public.test/a.png")
    assert fetched.content_type == "image/png"  # type: ignore[attr-defined]
    with pytest.raises(UnsupportedType) as wrong:
        get("http://public.test/page")
    assert wrong.value.code == 12300


def test_budget_is_shared_and_enforced() -> None:
    with pytest.raises(TooLarge) as big:
        get("http://public.test/a.png", budget=100)
    assert big.value.code == 11751


@pytest.mark.parametrize(
    ("head", "kind"),
    [(JPEG, "image/jpeg"), (PNG, "image/png"), (GIF, "image/gif"), (MP4, "video/mp4"),
     (b"<html>", None), (b"", None), (b"RIFF\x00\x00\x00\x00WEBP", None)],
)  # fmt: skip
def test_sniff(head: bytes, kind: str | None) -> None:
    assert sniff(head[:16]) == kind
