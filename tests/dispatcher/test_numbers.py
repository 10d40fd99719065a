"""A number's inbound webhook and its opt-outs: set through the SDK, /v1 and the CLI."""

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from dispatcher.cli.main import main
from tests.processes import Account, new_account, random_number


@pytest.fixture
def client(api_url: str, account: Account) -> Client:
    twilio = Client(account.sid, account.token)
    twilio.api.base_url = api_url
    return twilio


def test_a_numbers_webhook_is_set_cleared_and_checked(
    client: Client, account: Account, api_url: str
) -> None:
    [number] = client.incoming_phone_numbers.list(phone_number=account.number)
    path = f"{api_url}/v1/Accounts/{account.sid}/IncomingPhoneNumbers/{number.sid}"
    # when: set on the Twilio surface, read on /v1
    client.incoming_phone_numbers(number.sid).update(sms_url="https://example.org/sms",
                                                      sms_method="POST")  # fmt: skip
    shown = httpx.get(path, auth=account.auth).json()
    assert (shown["sms_url"], shown["sms_method"]) == ("https://example.org/sms", "POST")
    # then: refusals name the parameter and change nothing
    refusals = [({"SmsUrl": "ftp://example.org/x"}, 21609), ({"SmsMethod": "GET"}, 20001),
                ({"VoiceUrl": "https://example.org/v"}, 20001)]  # fmt: skip
    for fields, code in refusals:
        answer = httpx.post(path, data=fields, auth=account.auth)
        assert (answer.status_code, answer.json()["code"]) == (400, code), fields
    assert httpx.get(path, auth=account.auth).json()["sms_url"] == "https://example.org/sms"
    # and an empty URL clears it; another account's number is not found
    assert httpx.post(path, data={"SmsUrl": ""}, auth=account.auth).json()["sms_url"] is None
    other = new_account()
    stranger = httpx.post(path.replace(account.sid, other.sid), data={"SmsUrl": ""},
                          auth=other.auth)  # fmt: skip
    assert stranger.status_code == 404


def test_operators_set_a_webhook_and_manage_opt_outs_from_the_cli(
    client: Client, account: Account, tmp_path: Path, api_url: str
) -> None:
    def mycpaas(*args: str, ok: bool = True) -> str:
        done = CliRunner().invoke(main, list(args))
        assert (done.exit_code == 0) is ok, done.output
        return done.output

    # a webhook, checked
    assert "https://example.org/in" in mycpaas(
        "numbers", "update", account.number, "--sms-url", "https://example.org/in"
    )
    mycpaas("numbers", "update", account.number, "--sms-url", "mailto:x@example.org", ok=False)
    [number] = client.incoming_phone_numbers.list(phone_number=account.number)
    assert number.sms_url == "https://example.org/in"
    # opt-outs imported from a file and added by hand refuse creates; removed, they go again
    imported, by_hand = random_number(), random_number()
    listing = tmp_path / "optouts.txt"
    listing.write_text(f"{imported}\n\n")
    mycpaas("optouts", "add", "--from", account.number, "--file", str(listing), by_hand)
    listed = mycpaas("optouts", "list", "--from", account.number)
    assert {line.split()[0] for line in listed.splitlines()} == {imported, by_hand}
    for recipient in (imported, by_hand):
        with pytest.raises(TwilioRestException) as refused:
            client.messages.create(to=recipient, from_=account.number, body="x")
        assert refused.value.code == 21610
    mycpaas("optouts", "remove", "--from", account.number, imported)
    assert client.messages.create(to=imported, from_=account.number, body="x").status == "queued"
    mycpaas("optouts", "add", "--from", account.number, "not a number", ok=False)
    # and the list on /v1, for this account only, filtered and paged
    path = f"{api_url}/v1/Accounts/{account.sid}/OptOuts"
    page = httpx.get(path, auth=account.auth).json()
    assert [(o["phone_number"], o["scope"], o["source"]) for o in page["opt_outs"]] == [
        (by_hand, account.number, "operator")
    ]  # fmt: skip
    mycpaas("optouts", "add", "--from", account.number, imported)
    first = httpx.get(path, params={"PageSize": 1}, auth=account.auth).json()
    second = httpx.get(f"{api_url}{first['next_page_uri']}", auth=account.auth).json()
    assert [o["phone_number"] for o in first["opt_outs"] + second["opt_outs"]] == [
        by_hand, imported
    ]  # fmt: skip
    one = httpx.get(path, params={"PhoneNumber": imported}, auth=account.auth).json()
    assert [o["phone_number"] for o in one["opt_outs"]] == [imported]
    other = new_account()
    theirs = httpx.get(f"{api_url}/v1/Accounts/{other.sid}/OptOuts", auth=other.auth).json()
    assert theirs["opt_outs"] == []
    refused = httpx.get(path, params={"Color": "red"}, auth=account.auth)
    assert (refused.status_code, refused.json()["code"]) == (400, 20001)
    # and the automatic reply to HELP is set, reset and refused for a scope that is no sid
    assert "'Call 0800'" in mycpaas("optouts", "reply", "--scope", account.sid,
                                    "--keyword", "HELP", "--text", "Call 0800")  # fmt: skip
    assert "Twilio's default" in mycpaas("optouts", "reply", "--scope", account.sid,
                                         "--keyword", "HELP")  # fmt: skip
    mycpaas("optouts", "reply", "--scope", "+15005550006", "--keyword", "HELP", ok=False)
