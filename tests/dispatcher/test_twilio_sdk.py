"""The official twilio SDK, pointed at a real running server, works unchanged."""

from datetime import UTC, datetime

import httpx
import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from tests.dispatcher.test_list import mark_sent
from tests.processes import Account, random_number


@pytest.fixture
def client(api_url: str, account: Account) -> Client:
    twilio = Client(account.sid, account.token)
    twilio.api.base_url = api_url
    return twilio


def test_create_and_fetch(client: Client, account: Account) -> None:
    # when
    to = random_number()
    created = client.messages.create(to=to, from_=account.number, body="hello from the SDK")
    fetched = client.messages(created.sid).fetch()
    # then
    assert created.sid.startswith("SM")
    assert (created.to, created.from_, created.status) == (to, account.number, "queued")
    assert created.num_segments == "1"
    assert created.num_media == "0"
    assert isinstance(created.date_created, datetime)
    assert created.date_created.tzinfo is not None
    assert created.api_version == "2010-04-01"
    assert created.subresource_uris["media"].endswith(f"/Messages/{created.sid}/Media.json")
    assert fetched.sid == created.sid
    assert fetched.body == "hello from the SDK"


def test_create_mms_with_media_urls(client: Client, account: Account) -> None:
    message = client.messages.create(
        to=random_number(), from_=account.number,
        media_url=["https://example.org/a.jpg", "https://example.org/b.jpg"],
    )  # fmt: skip
    assert message.sid.startswith("MM")
    assert message.num_media == "2"


def test_list_over_several_pages_with_filters(client: Client, account: Account) -> None:
    # given
    target = random_number()
    sids = [
        client.messages.create(to=target, from_=account.number, body=str(i)).sid for i in range(7)
    ]
    client.messages.create(to=random_number(), from_=account.number, body="other")
    # when
    listed = client.messages.list(to=target, page_size=3)
    streamed = list(client.messages.stream(to=target, page_size=2, limit=5))
    everything = client.messages.list(limit=5000)
    # then
    assert [m.sid for m in listed] == list(reversed(sids))
    assert [m.sid for m in streamed] == list(reversed(sids))[:5]
    assert len(everything) == 8


def test_list_with_date_sent_filters(client: Client, account: Account) -> None:
    # given
    sids = [
        client.messages.create(to=random_number(), from_=account.number, body="d").sid
        for _ in range(2)
    ]
    mark_sent(sids[0], datetime(2026, 5, 1, 8, 30, tzinfo=UTC))
    mark_sent(sids[1], datetime(2026, 5, 3, 8, 30, tzinfo=UTC))
    # when
    before = client.messages.list(date_sent_before=datetime(2026, 5, 2, tzinfo=UTC), page_size=1)
    after = client.messages.list(date_sent_after=datetime(2026, 5, 2, tzinfo=UTC), page_size=1)
    # then
    assert [m.sid for m in before] == [sids[0]]
    assert [m.sid for m in after] == [sids[1]]
    assert after[0].date_sent == datetime(2026, 5, 3, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "code", "status"),
    [
        ({"to": "+1234", "body": "x"}, 21211, 400),
        ({"to": "+4915112345678"}, 21602, 400),
        ({"to": "+4915112345678", "body": "a" * 1601}, 21617, 400),
        ({"to": "+4915112345678", "body": "x", "status_callback": "ftp://x"}, 21609, 400),
    ],
)
def test_errors_raise_twilio_rest_exception_with_our_codes(
    client: Client, account: Account, params: dict, code: int, status: int
) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(from_=account.number, **params)
    assert (raised.value.code, raised.value.status) == (code, status)
    assert raised.value.msg


def test_wrong_token_and_unknown_message(api_url: str, account: Account, client: Client) -> None:
    intruder = Client(account.sid, "0" * 32)
    intruder.api.base_url = api_url
    with pytest.raises(TwilioRestException) as denied:
        intruder.messages.create(to="+4915112345678", from_=account.number, body="x")
    with pytest.raises(
        TwilioException
    ) as denied_page:  # the SDK's page reader raises the base class
        intruder.messages.list()
    with pytest.raises(TwilioRestException) as missing:
        client.messages("SM" + "0" * 32).fetch()
    assert (denied.value.status, denied.value.code) == (401, 20003)
    assert "20003" in str(denied_page.value)
    assert (missing.value.status, missing.value.code) == (404, 20404)


def test_page_json_has_exactly_one_non_paging_key(api_url: str, account: Account) -> None:
    page = httpx.get(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages.json", auth=account.auth
    ).json()
    paging = {"page", "page_size", "start", "end", "uri", "first_page_uri", "next_page_uri",
              "previous_page_uri"}  # fmt: skip
    assert set(page) - paging == {"messages"}


def test_twilio_dates_are_rfc_2822(api_url: str, account: Account) -> None:
    response = httpx.post(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages.json",
        data={"To": random_number(), "From": account.number, "Body": "x"},
        auth=account.auth,
    )
    message = response.json()
    assert message["date_created"].endswith(" +0000")
    datetime.strptime(message["date_created"], "%a, %d %b %Y %H:%M:%S %z")
    assert message["uri"] == f"/2010-04-01/Accounts/{account.sid}/Messages/{message['sid']}.json"
