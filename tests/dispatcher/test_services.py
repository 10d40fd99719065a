"""Messaging Services through the twilio SDK's own calls (``client.messaging`` pointed at the
platform): the service resource, its pool of numbers, and messages whose sender it chooses."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from dispatcher.cli.main import main
from dispatcher.intake.accounts import add_number
from schemas.db import session_scope
from schemas.models import Message
from tests.processes import Account, random_number
from tests.twilio_schema import MESSAGE, SERVICE, SERVICE_NUMBER, assert_matches


@pytest.fixture
def client(api_url: str, account: Account) -> Client:
    twilio = Client(account.sid, account.token)
    twilio.api.base_url = api_url
    twilio.messaging.base_url = api_url
    return twilio


def more_numbers(account: Account, *rates: float) -> list[str]:
    with session_scope() as session:
        return [
            add_number(session, account.sid, random_number(), sps).phone_number for sps in rates
        ]


def number_sid(client: Client, number: str) -> str:
    [found] = client.incoming_phone_numbers.list(phone_number=number)
    assert found.phone_number == number
    return str(found.sid)


def service_with(client: Client, numbers: list[str], **fields: object) -> str:
    service = client.messaging.v1.services.create(friendly_name="pool", **fields)
    for number in numbers:
        client.messaging.v1.services(service.sid).phone_numbers.create(
            phone_number_sid=number_sid(client, number)
        )
    return str(service.sid)


def stored(sid: str) -> Message:
    with session_scope() as session:
        message = session.get(Message, sid)
    assert message is not None
    return message


def test_sdk_creates_fetches_lists_updates_and_deletes_a_service(
    client: Client, account: Account, api_url: str
) -> None:
    # when
    created = client.messaging.v1.services.create(
        friendly_name="alerts", status_callback="https://example.org/status", sticky_sender=False,
        validity_period=600, smart_encoding=False,
    )  # fmt: skip
    others = [client.messaging.v1.services.create(friendly_name=f"s{n}").sid for n in range(2)]
    fetched = client.messaging.v1.services(created.sid).fetch()
    listed = client.messaging.v1.services.list(page_size=2)
    updated = client.messaging.v1.services(created.sid).update(
        friendly_name="renamed", sticky_sender=True
    )
    deleted = client.messaging.v1.services(created.sid).delete()
    # then
    assert created.sid.startswith("MG")
    assert (fetched.friendly_name, fetched.status_callback, fetched.sticky_sender) == (
        "alerts", "https://example.org/status", False)  # fmt: skip
    assert (fetched.validity_period, fetched.smart_encoding) == (600, False)
    assert isinstance(fetched.date_created, datetime)
    assert [s.sid for s in listed] == [created.sid, *others]  # over two pages
    assert (updated.friendly_name, updated.sticky_sender, updated.validity_period) == (
        "renamed",
        True,
        600,
    )
    assert deleted is True
    with pytest.raises(TwilioRestException) as missing:
        client.messaging.v1.services(created.sid).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)


def test_service_and_pool_responses_match_twilios_schemas(
    client: Client, account: Account, api_url: str
) -> None:
    sid = service_with(client, [account.number], status_callback="https://example.org/s")
    pn = number_sid(client, account.number)
    auth = account.auth
    service = httpx.get(f"{api_url}/v1/Services/{sid}", auth=auth).json()
    page = httpx.get(f"{api_url}/v1/Services", auth=auth).json()
    number = httpx.get(f"{api_url}/v1/Services/{sid}/PhoneNumbers/{pn}", auth=auth).json()
    numbers = httpx.get(f"{api_url}/v1/Services/{sid}/PhoneNumbers", auth=auth).json()
    assert_matches(service, SERVICE)
    assert_matches(number, SERVICE_NUMBER)
    for listed in page["services"]:
        assert_matches(listed, SERVICE)
    assert_matches(numbers["phone_numbers"][0], SERVICE_NUMBER)
    assert page["meta"]["key"] == "services"
    assert number["country_code"] == "DE"
    assert service["url"] == f"{api_url}/v1/Services/{sid}"


def test_sdk_manages_the_pool(client: Client, account: Account, other_account: Account) -> None:
    # given
    [second] = more_numbers(account, 5.0)
    sid = service_with(client, [account.number, second])
    pool = client.messaging.v1.services(sid).phone_numbers
    # when
    listed = pool.list()
    one = pool(number_sid(client, second)).fetch()
    removed = pool(number_sid(client, second)).delete()
    # then
    assert [n.phone_number for n in listed] == [account.number, second]
    assert (one.phone_number, one.service_sid, one.capabilities) == (second, sid, ["SMS", "MMS"])
    assert removed is True
    assert [n.phone_number for n in pool.list()] == [account.number]
    # a number belongs to one service; another account's number is unknown here
    other = service_with(client, [])
    with pytest.raises(TwilioRestException) as taken:
        client.messaging.v1.services(other).phone_numbers.create(
            phone_number_sid=number_sid(client, account.number)
        )
    foreign = Client(other_account.sid, other_account.token)
    foreign.api.base_url = client.api.base_url
    foreign_sid = number_sid(foreign, other_account.number)
    with pytest.raises(TwilioRestException) as unknown:
        client.messaging.v1.services(other).phone_numbers.create(phone_number_sid=foreign_sid)
    assert (taken.value.status, taken.value.code) == (409, 21710)
    assert (unknown.value.status, unknown.value.code) == (404, 20404)


def test_another_account_cannot_see_a_service(
    client: Client, api_url: str, other_account: Account
) -> None:
    sid = service_with(client, [])
    response = httpx.get(f"{api_url}/v1/Services/{sid}", auth=other_account.auth)
    assert (response.status_code, response.json()["code"]) == (404, 20404)
    assert sid not in str(httpx.get(f"{api_url}/v1/Services", auth=other_account.auth).json())


def test_incoming_phone_numbers_on_both_surfaces(
    client: Client, account: Account, api_url: str
) -> None:
    [second] = more_numbers(account, 3.0)
    listed = client.incoming_phone_numbers.list()
    assert [n.phone_number for n in listed] == [account.number, second]
    assert all(n.sid.startswith("PN") and isinstance(n.date_created, datetime) for n in listed)
    fetched = client.incoming_phone_numbers(listed[1].sid).fetch()
    assert (fetched.phone_number, fetched.capabilities["sms"]) == (second, True)
    v1 = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/IncomingPhoneNumbers",
        params={"PhoneNumber": second}, auth=account.auth,
    ).json()  # fmt: skip
    assert [(n["sid"], n["segments_per_second"]) for n in v1["incoming_phone_numbers"]] == [
        (listed[1].sid, 3.0)
    ]


def test_a_message_through_a_service_gets_its_sender_and_defaults(
    client: Client, account: Account, api_url: str
) -> None:
    # given
    sid = service_with(client, [account.number], status_callback="https://example.org/svc",
                       validity_period=900)  # fmt: skip
    # when
    plain = client.messages.create(to=random_number(), messaging_service_sid=sid, body="hi")
    own = client.messages.create(
        to=random_number(), messaging_service_sid=sid, body="hi",
        status_callback="https://example.org/mine", validity_period=60,
    )  # fmt: skip
    # then
    assert (plain.from_, plain.messaging_service_sid, plain.status) == (
        account.number,
        sid,
        "queued",
    )
    raw = httpx.get(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages/{plain.sid}.json", auth=account.auth
    ).json()
    assert_matches(raw, MESSAGE)
    assert (stored(plain.sid).status_callback, stored(plain.sid).validity_period_s) == (
        "https://example.org/svc", 900)  # fmt: skip
    assert (stored(own.sid).status_callback, stored(own.sid).validity_period_s) == (
        "https://example.org/mine", 60)  # fmt: skip


def test_a_sticky_service_keeps_one_sender_per_destination(
    client: Client, account: Account
) -> None:
    numbers = [account.number, *more_numbers(account, 1000.0, 1000.0, 1000.0)]  # as fast as it
    sid = service_with(client, numbers, sticky_sender=True)
    destinations = [random_number() for _ in range(12)]
    senders: dict[str, set[str]] = {to: set() for to in destinations}
    for _ in range(3):
        for to in destinations:
            senders[to].add(
                client.messages.create(to=to, messaging_service_sid=sid, body="x").from_
            )
    assert all(len(used) == 1 for used in senders.values())
    assert len(set.union(*senders.values())) > 1  # first choices are spread over the pool


def test_a_non_sticky_service_spreads_by_throughput(
    api_url: str, account: Account, client: Client
) -> None:
    # given: one number three times as fast as the other
    slow, fast = more_numbers(account, 1.0, 3.0)
    sid = service_with(client, [slow, fast], sticky_sender=False)
    to = random_number()
    # when
    with httpx.Client(base_url=api_url, auth=account.auth) as http:
        senders = Counter(
            http.post(f"/v1/Accounts/{account.sid}/Messages",
                      data={"To": to, "MessagingServiceSid": sid, "Body": "x"}).json()["from"]
            for _ in range(400)
        )  # fmt: skip
    # then: 100 and 300 expected; ±40 is more than five standard deviations
    assert set(senders) == {slow, fast}
    assert 60 <= senders[slow] <= 140, senders


@pytest.mark.parametrize(
    ("service", "code"),
    [("MG" + "0" * 32, 21701), ("not-a-sid", 21701), ("empty", 21704)],
)
def test_service_errors_at_create(
    client: Client, account: Account, service: str, code: int
) -> None:
    if service == "empty":
        service = service_with(client, [])
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=random_number(), messaging_service_sid=service, body="x")
    assert (raised.value.status, raised.value.code) == (400, code)


def test_a_service_schedules_and_a_missing_sender_is_21603(
    client: Client, account: Account, api_url: str
) -> None:
    sid = service_with(client, [account.number])
    scheduled = client.messages.create(
        to=random_number(), messaging_service_sid=sid, body="later", schedule_type="fixed",
        send_at=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    assert (scheduled.status, scheduled.from_, scheduled.messaging_service_sid) == (
        "scheduled", account.number, sid)  # fmt: skip
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        data={"To": random_number(), "Body": "x"}, auth=account.auth,
    )  # fmt: skip
    assert response.json()["code"] == 21603


@pytest.mark.parametrize(
    "params",
    [{"MmsConverter": "true"}, {"FallbackToLongCode": "true"}, {"AreaCodeGeomatch": "true"},
     {"ScanMessageContent": "enable"}, {"FriendlyName": ""}, {"ValidityPeriod": "0"},
     {"StatusCallback": "ftp://x"}, {"Colour": "blue"}],
)  # fmt: skip
def test_service_parameters_that_would_change_delivery_are_refused(
    api_url: str, account: Account, params: dict
) -> None:
    response = httpx.post(
        f"{api_url}/v1/Services", data={"FriendlyName": "x", **params}, auth=account.auth
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    ("params", "status"),
    [({"Page": "²"}, 400), ({"PageSize": "³"}, 400), ({"Page": "1" * 5000}, 400),
     ({"Page": "6326994769491944069632268173312"}, 400), ({"PageSize": "9" * 5000}, 200),
     ({"Page": "", "PageSize": ""}, 200)],
    ids=["superscript Page", "superscript PageSize", "Page of 5000 digits", "Page past bigint",
         "PageSize of 5000 digits is clamped", "blank counts as absent"],
)  # fmt: skip
def test_list_paging_that_answered_500(
    client: Client, api_url: str, account: Account, params: dict, status: int
) -> None:
    # given: every list of services and numbers reads Page and PageSize as the messages list does
    sid = service_with(client, [account.number])
    lists = [
        "/v1/Services", f"/v1/Services/{sid}/PhoneNumbers",
        f"/v1/Accounts/{account.sid}/IncomingPhoneNumbers",
        f"/2010-04-01/Accounts/{account.sid}/IncomingPhoneNumbers.json",
    ]  # fmt: skip
    for path in lists:
        # when
        response = httpx.get(f"{api_url}{path}", params=params, auth=account.auth)
        # then
        assert response.status_code == status, (path, response.text)


@pytest.mark.parametrize(
    "fields",
    [{"Usecase": -5e-324}, {"StickySender": "true"}, {"ValidityPeriod": "600"},
     {"MmsConverter": "false"}, {"InboundMethod": "get"}, {"FriendlyName": None}],
)  # fmt: skip
def test_a_json_service_body_has_the_documented_types(
    api_url: str, account: Account, fields: dict
) -> None:
    # given: a form carries only text, but JSON values have types (the fuzzer found a number
    # accepted as a Usecase)
    body = {"FriendlyName": "x", **fields}
    # when
    response = httpx.post(f"{api_url}/v1/Services", json=body, auth=account.auth)
    # then
    assert (response.status_code, response.json()["code"]) == (400, 20001), response.text


def test_a_json_service_body_reads_null_as_absent(api_url: str, account: Account) -> None:
    body = {"FriendlyName": "x", "ValidityPeriod": 600, "StickySender": False,
            "MmsConverter": False, "Usecase": None}  # fmt: skip
    response = httpx.post(f"{api_url}/v1/Services", json=body, auth=account.auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["validity_period"], created["sticky_sender"], created["usecase"]) == (
        600, False, "undeclared")  # fmt: skip


def test_the_cli_creates_lists_and_fills_a_service(account: Account) -> None:
    def mycpaas(*args: str) -> str:
        done = CliRunner().invoke(main, list(args))
        assert done.exit_code == 0, done.output
        return done.output

    number = random_number()
    added = mycpaas("numbers", "add", "--account", account.sid, number)
    created = mycpaas("services", "create", "--account", account.sid, "--name", "cli pool")
    sid = created.split()[0]
    filled = mycpaas("services", "add-number", "--service", sid, number)
    listed = mycpaas("services", "list", "--account", account.sid)
    assert added.startswith("PN")
    assert number in added
    assert sid.startswith("MG")
    assert filled.split()[0] == added.split()[0]
    assert f"{sid}  cli pool  (sticky)  {number}" in listed


def test_a_destination_stuck_to_a_removed_number_gets_another(
    client: Client, account: Account
) -> None:
    # given: a destination stuck to one of two numbers
    numbers = [account.number, *more_numbers(account, 1000.0)]
    sid = service_with(client, numbers, sticky_sender=True)
    to = random_number()
    first = client.messages.create(to=to, messaging_service_sid=sid, body="x").from_
    # when: that number leaves the pool
    client.messaging.v1.services(sid).phone_numbers(number_sid(client, first)).delete()
    later = {
        client.messages.create(to=to, messaging_service_sid=sid, body="x").from_ for _ in range(3)
    }
    # then
    assert later == set(numbers) - {first}
