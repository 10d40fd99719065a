"""Two-way messaging through real processes: a handset texts one of our numbers over SMPP (the
simulator's SMSC originates the deliver_sm), the number's webhook gets Twilio's signed request,
the message is listed through the twilio SDK, and STOP makes the next create answer 21610."""

from collections.abc import Iterator

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.e2e.conftest import Platform
from tests.e2e.test_smpp import smpp_platform, smsc, wait_for
from tests.processes import Account, random_number
from tests.receiver import Receiver, running_receiver
from workers.twoway.replies import DEFAULT_TEXTS


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workers = ("segment", "carrier", "callbacks", "maintenance")
    with smpp_platform(tmp_path_factory.mktemp("inbound"), workers=workers) as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def text(platform: Platform, handset: str, to: str, body: str, **options: object) -> None:
    answer = httpx.post(f"{platform.sim}/mo", json={"from": handset, "to": to, "body": body,
                                                    **options}, timeout=5)  # fmt: skip
    assert answer.status_code == 200, answer.text


def webhooks_from(receiver: Receiver, handset: str, count: int) -> list[dict[str, str]]:
    def arrived() -> list[dict[str, str]]:
        with receiver.lock:
            return [r.params for r in receiver.requests if r.params.get("From") == handset]

    wait_for(lambda: len(arrived()) >= count)
    return arrived()


def listening(platform: Platform, sms_url: str) -> tuple[Account, Client, str]:
    """A fresh account, its twilio SDK client, and its number's PN sid, the number's SmsUrl
    set to ``sms_url`` through the SDK."""
    account = platform.new_account()
    client = Client(account.sid, account.token)
    client.api.base_url = platform.api
    [number] = client.incoming_phone_numbers.list(phone_number=account.number)
    updated = client.incoming_phone_numbers(number.sid).update(sms_url=sms_url)
    assert updated.sms_url == sms_url
    return account, client, number.sid


def test_a_handset_texts_the_number_and_its_webhook_hears_it(
    platform: Platform, receiver: Receiver
) -> None:
    # given: the number's SmsUrl set through the twilio SDK
    account, client, _ = listening(platform, receiver.url("/ok?n=1"))
    handset = random_number()
    # when: the handset sends one message, then a long one in three parts, last part first
    text(platform, handset, account.number, "hello")
    long = "part one, " * 20
    text(platform, handset, account.number, long, parts=3, reverse=True)
    # then: the webhook hears each, signed as Twilio signs
    got = webhooks_from(receiver, handset, 2)
    assert sorted(params["Body"] for params in got) == sorted(["hello", long])
    validator = RequestValidator(account.token)
    with receiver.lock:
        requests = [r for r in receiver.requests if r.params.get("From") == handset]
    for request in requests:
        assert request.params["To"] == account.number
        assert request.params["SmsStatus"] == "received"
        assert request.headers["i-twilio-idempotency-token"].endswith(".received")
        assert validator.validate(
            receiver.url("/ok?n=1"), request.params, request.headers["x-twilio-signature"]
        )
    # and the messages are listed, inbound and received, and the SMSC saw each part answered
    listed = client.messages.list(from_=handset)
    assert {(m.direction, m.status, m.body) for m in listed} == {
        ("inbound", "received", "hello"), ("inbound", "received", long)
    }  # fmt: skip
    wait_for(lambda: smsc(platform).get("mo_acked", 0) >= 4)


def test_stop_refuses_the_next_create_with_21610_and_start_lifts_it(
    platform: Platform, receiver: Receiver
) -> None:
    account, client, _ = listening(platform, receiver.url("/ok?n=2"))
    handset = random_number()
    # when: the handset texts STOP
    text(platform, handset, account.number, "Stop")
    [hook] = webhooks_from(receiver, handset, 1)
    assert hook["OptOutType"] == "STOP"
    # then: a create to it is refused
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to=handset, from_=account.number, body="one more?")
    assert refused.value.code == 21610
    assert refused.value.status == 400
    # and after START it goes out again
    text(platform, handset, account.number, "START")
    webhooks_from(receiver, handset, 2)
    created = client.messages.create(to=handset, from_=account.number, body="welcome back")
    assert created.status == "queued"
    # and each keyword was answered through the carrier, STOP's confirmation too
    sent = replies_sent(client, handset, 2)
    assert sorted(sent) == sorted([DEFAULT_TEXTS["STOP"], DEFAULT_TEXTS["START"]])


def replies_sent(client: Client, handset: str, count: int) -> list[str]:
    """The bodies of the replies to ``handset`` the carrier took, once ``count`` are."""

    def sent() -> list[str]:
        return [m.body for m in client.messages.list(to=handset)
                if m.direction == "outbound-reply" and m.status in ("sent", "delivered")]  # fmt: skip

    wait_for(lambda: len(sent()) >= count)
    return sent()


def test_the_webhooks_twiml_is_sent_back_and_bad_twiml_is_recorded(
    platform: Platform, receiver: Receiver
) -> None:
    # given: a webhook that answers with a <Message>
    account, client, number_sid = listening(platform, receiver.url("/twiml/reply"))
    handset = random_number()
    # when: the handset texts
    text(platform, handset, account.number, "hours?")
    # then: the reply reaches the carrier, from the number to the handset
    assert replies_sent(client, handset, 1) == ["got it"]
    [reply] = [m for m in client.messages.list(to=handset)]
    assert (reply.from_, reply.direction) == (account.number, "outbound-reply")
    # and an answer that is not XML sends nothing, its code on the inbound message
    client.incoming_phone_numbers(number_sid).update(sms_url=receiver.url("/twiml/bad"))
    other = random_number()
    text(platform, other, account.number, "hello?")
    webhooks_from(receiver, other, 1)

    def code() -> int | None:
        [inbound] = client.messages.list(from_=other) or [None]
        return inbound.error_code if inbound else None

    wait_for(lambda: code() == 12100)
    assert client.messages.list(to=other) == []
