"""Cancel, redact and delete with the twilio SDK against the running platform: a canceled
message is called back and never sent; a delivered one is redacted, then deleted whole."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from schemas.db import session_scope
from schemas.models import segments_table
from tests.e2e.conftest import Platform
from tests.processes import Account, random_number
from tests.receiver import Receiver, running_receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def sdk(platform: Platform, account: Account) -> Client:
    client = Client(account.sid, account.token)
    client.api.base_url = platform.api
    return client


@pytest.mark.both_brokers
def test_a_canceled_message_is_called_back_and_never_sent(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    # given
    client = sdk(platform, account)
    message = client.messages.create(
        to=random_number(), from_=account.number, body="never", schedule_type="fixed",
        send_at=datetime.now(UTC) + timedelta(minutes=10), status_callback=receiver.url("/ok"),
    )  # fmt: skip
    # when
    canceled = client.messages(message.sid).update(status="canceled")
    # then
    [callback] = receiver.wait_for(message.sid, 1)
    assert canceled.status == "canceled"
    assert (callback.params["MessageStatus"], callback.params["SmsStatus"]) == ("canceled",) * 2
    time.sleep(1.5)  # a sweep or more: nothing releases a canceled message
    assert client.messages(message.sid).fetch().status == "canceled"
    assert platform.counters(message.sid) == {}


def test_a_delivered_message_is_redacted_then_deleted(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    # given: delivered in two parts, its three callbacks delivered
    client = sdk(platform, account)
    sid = client.messages.create(
        to=random_number(), from_=account.number, body="one-time code 123456 " * 10,
        status_callback=receiver.url("/ok"),
    ).sid  # fmt: skip
    platform.wait_terminal(account, [sid])
    receiver.wait_for(sid, 3)
    # when
    redacted = client.messages(sid).update(body="")
    # then
    with session_scope() as session:
        texts = session.execute(
            select(segments_table.c.text).where(segments_table.c.message_sid == sid)
        ).scalars()
        assert list(texts) == ["", ""]
    assert (redacted.body, redacted.status) == ("", "delivered")
    # when
    deadline = time.monotonic() + 10
    while True:  # the last callback's result may still be on its way to the record
        try:
            assert client.messages(sid).delete() is True
            break
        except TwilioRestException as exc:
            if exc.code != 20009 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    # then
    with pytest.raises(TwilioRestException) as missing:
        client.messages(sid).fetch()
    assert missing.value.status == 404
