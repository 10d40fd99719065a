"""MMS through real processes and a real media server: types by bytes, budgets, failures."""

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from twilio.rest import Client

from tests.e2e.conftest import Platform
from tests.media_server import JPEG, PNG, MediaServer, running_media_server
from tests.processes import Account, random_number


@pytest.fixture(scope="module")
def media_server() -> Iterator[MediaServer]:
    with running_media_server() as server:
        yield server


def send_mms(platform: Platform, account: Account, urls: list[str]) -> str:
    response = httpx.post(
        f"{platform.api}/v1/Accounts/{account.sid}/Messages",
        data={"To": random_number(), "From": account.number, "Body": "look", "MediaUrl": urls},
        auth=account.auth,
    )
    assert response.status_code == 201, response.text
    assert response.json()["sid"].startswith("MM")
    return str(response.json()["sid"])


def media_list(platform: Platform, account: Account, sid: str) -> list[dict]:
    return httpx.get(
        f"{platform.api}/v1/Accounts/{account.sid}/Messages/{sid}/Media", auth=account.auth
    ).json()["media"]


@pytest.mark.both_brokers
def test_every_supported_type_is_fetched_stored_and_delivered(
    platform: Platform, account: Account, media_server: MediaServer
) -> None:
    # given
    paths = ["/a.jpg", "/a.png", "/a.gif", "/a.mp4", "/png-as-jpeg", "/redirect"]
    # when
    sid = send_mms(platform, account, [media_server.url(p) for p in paths])
    message = platform.wait_terminal(account, [sid])[sid]
    # then: types decided by the bytes (the PNG served as image/jpeg is a PNG)
    assert message["status"] == "delivered"
    items = media_list(platform, account, sid)
    assert [i["content_type"] for i in items] == [
        "image/jpeg", "image/png", "image/gif", "video/mp4", "image/png", "image/png",
    ]  # fmt: skip
    assert items[0]["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert items[1]["size"] == len(PNG)
    content = httpx.get(f"{platform.api}{items[0]['uri']}/Content", auth=account.auth)
    assert content.content == JPEG
    assert content.headers["content-type"] == "image/jpeg"


def test_ten_urls(platform: Platform, account: Account, media_server: MediaServer) -> None:
    sid = send_mms(platform, account, [media_server.url("/a.jpg")] * 10)
    assert platform.wait_terminal(account, [sid])[sid]["status"] == "delivered"
    assert len(media_list(platform, account, sid)) == 10


@pytest.mark.parametrize(
    ("path", "code"),
    [("/html-as-png", 12300), ("/big", 11751), ("/404", 11200)],
    ids=["html served as png", "5 MB + 1 byte", "404"],
)
def test_bad_media_fails_the_message(
    platform: Platform, account: Account, media_server: MediaServer, path: str, code: int
) -> None:
    sid = send_mms(platform, account, [media_server.url("/a.jpg"), media_server.url(path)])
    message = platform.wait_terminal(account, [sid])[sid]
    assert (message["status"], message["error_code"]) == ("failed", code)
    assert media_list(platform, account, sid) == []


@pytest.mark.both_brokers
def test_500_then_200_is_retried(
    platform: Platform, account: Account, media_server: MediaServer
) -> None:
    sid = send_mms(platform, account, [media_server.url("/flaky")])
    assert platform.wait_terminal(account, [sid])[sid]["status"] == "delivered"
    assert media_server.hits["/flaky"] == 2


def test_a_server_that_dribbles_forever_fails_with_11200(
    platform: Platform, account: Account, media_server: MediaServer
) -> None:
    sid = send_mms(platform, account, [media_server.url("/dribble")])
    message = platform.wait_terminal(account, [sid], timeout_s=40)[sid]
    assert (message["status"], message["error_code"]) == ("failed", 11200)


def test_twilio_sdk_lists_media(
    platform: Platform, account: Account, media_server: MediaServer
) -> None:
    sid = send_mms(platform, account, [media_server.url("/a.png"), media_server.url("/a.gif")])
    platform.wait_terminal(account, [sid])
    client = Client(account.sid, account.token)
    client.api.base_url = platform.api
    listed = client.messages(sid).media.list()
    assert [m.content_type for m in listed] == ["image/png", "image/gif"]
    assert all(m.sid.startswith("ME") and m.parent_sid == sid for m in listed)
    one = client.messages(sid).media(listed[0].sid).fetch()
    assert one.content_type == "image/png"
