"""Scheduling through the real server and the twilio SDK: 'scheduled' until SendAt, Twilio's
window and error codes, and no parameter that changes delivery silently ignored."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from schemas.db import session_scope
from schemas.models import Message
from tests.processes import Account, random_number
from tests.twilio_schema import MESSAGE, assert_matches


@pytest.fixture
def client(api_url: str, account: Account) -> Client:
    twilio = Client(account.sid, account.token)
    twilio.api.base_url = api_url
    return twilio


def stored(sid: str) -> Message:
    with session_scope() as session:
        message = session.get(Message, sid)
    assert message is not None
    return message


def in_an_hour() -> datetime:
    return (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


def test_sdk_schedules_a_message_that_waits_for_its_send_at(
    client: Client, account: Account, api_url: str
) -> None:
    # given
    send_at = in_an_hour()
    # when
    created = client.messages.create(
        to=random_number(), from_=account.number, body="later", schedule_type="fixed",
        send_at=send_at,
    )  # fmt: skip
    # then
    assert created.status == "scheduled"
    row = stored(created.sid)
    assert (row.stage, row.next_attempt_at, row.send_at) == ("scheduled", send_at, send_at)
    assert row.expires_at == send_at + timedelta(seconds=row.validity_period_s)
    raw = httpx.get(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages/{created.sid}.json",
        auth=account.auth,
    ).json()
    assert_matches(raw, MESSAGE)
    assert raw["status"] == "scheduled"


def test_v1_shows_send_at_and_lists_by_status(api_url: str, account: Account) -> None:
    # given
    send_at = in_an_hour()
    url = f"{api_url}/v1/Accounts/{account.sid}/Messages"
    # when
    created = httpx.post(
        url, auth=account.auth,
        data={"To": random_number(), "From": account.number, "Body": "x",
              "ScheduleType": "fixed", "SendAt": send_at.isoformat()},
    )  # fmt: skip
    listed = httpx.get(url, params={"Status": "scheduled"}, auth=account.auth).json()
    # then
    assert created.status_code == 201, created.text
    assert created.json()["send_at"] == send_at.isoformat().replace("+00:00", "Z")
    assert [m["sid"] for m in listed["messages"]] == [created.json()["sid"]]


def ahead(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "surface", ["/v1/Accounts/{}/Messages", "/2010-04-01/Accounts/{}/Messages.json"]
)
@pytest.mark.parametrize(
    ("schedule", "code"),
    [
        ({"ScheduleType": "fixed"}, 35111),
        ({"ScheduleType": "fixed", "SendAt": ""}, 35111),
        ({"ScheduleType": "fixed", "SendAt": "next tuesday"}, 35114),
        # no instant in UTC: these answered 500
        ({"ScheduleType": "fixed", "SendAt": "9999-12-31T23:59:59-01:00"}, 35114),
        ({"ScheduleType": "fixed", "SendAt": "0001-01-01T00:00:00+01:00"}, 35114),
        ({"ScheduleType": "fixed", "SendAt": ahead(60)}, 35114),
        ({"ScheduleType": "fixed", "SendAt": ahead(-3600)}, 35114),
        ({"ScheduleType": "fixed", "SendAt": ahead(36 * 86400)}, 35115),
        ({"ScheduleType": "whenever", "SendAt": ahead(3600)}, 20001),
        ({"SendAt": ahead(3600)}, 20001),
    ],
)
def test_schedule_errors(
    api_url: str, account: Account, surface: str, schedule: dict, code: int
) -> None:
    response = httpx.post(
        api_url + surface.format(account.sid), auth=account.auth,
        data={"To": random_number(), "From": account.number, "Body": "x", **schedule},
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


def test_the_window_holds_its_edges(api_url: str, account: Account) -> None:
    # Twilio: more than 300 s ahead and at most 35 days. SendAt is in whole seconds (up to one
    # lost) and the request takes its time on a busy machine: five seconds of slack each side.
    for seconds in (305, 35 * 86400 - 5):
        response = httpx.post(
            f"{api_url}/v1/Accounts/{account.sid}/Messages", auth=account.auth,
            data={"To": random_number(), "From": account.number, "Body": "x",
                  "ScheduleType": "fixed", "SendAt": ahead(seconds)},
        )  # fmt: skip
        assert response.status_code == 201, (seconds, response.text)


def test_sdk_error_for_a_send_at_too_soon(client: Client, account: Account) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(
            to=random_number(), from_=account.number, body="x", schedule_type="fixed",
            send_at=datetime.now(UTC) + timedelta(seconds=10),
        )  # fmt: skip
    assert (raised.value.status, raised.value.code) == (400, 35114)


@pytest.mark.parametrize(
    "params",
    [{"ContentSid": "HX" + "0" * 32}, {"ContentVariables": "{}"}, {"MaxPrice": "0.5"},
     {"Attempt": "2"}, {"ApplicationSid": "AP" + "0" * 32}, {"PersistentAction": "x"},
     {"ShortenUrls": "true"}, {"SendAsMms": "true"}, {"ForceDelivery": "true"},
     {"RiskCheck": "enable"}],
)  # fmt: skip
def test_parameters_that_would_change_delivery_are_refused_by_name(
    api_url: str, account: Account, params: dict
) -> None:
    response = httpx.post(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages.json", auth=account.auth,
        data={"To": random_number(), "From": account.number, "Body": "x", **params},
    )  # fmt: skip
    assert response.status_code == 400
    assert next(iter(params)) in response.json()["message"]


def test_parameters_without_effect_on_delivery_are_accepted(api_url: str, account: Account) -> None:
    response = httpx.post(
        f"{api_url}/2010-04-01/Accounts/{account.sid}/Messages.json", auth=account.auth,
        data={"To": random_number(), "From": account.number, "Body": "x",
              "ProvideFeedback": "true", "AddressRetention": "retain", "ContentRetention": "retain",
              "TrafficType": "free", "ShortenUrls": "false", "SendAsMms": "false",
              "ForceDelivery": "false", "RiskCheck": "disable"},
    )  # fmt: skip
    assert response.status_code == 201, response.text


def test_metrics_show_every_status(api_url: str) -> None:
    text = httpx.get(f"{api_url}/metrics").text
    for status in ("scheduled", "queued", "canceled", "delivered"):
        assert f'mycpaas_messages{{status="{status}"}}' in text
