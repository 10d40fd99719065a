"""Bulk create: up to 1,000 messages per request, each checked and answered on its own."""

import uuid

import httpx
import pytest
from sqlmodel import Session, select

from dispatcher.intake import bulk as bulk_module
from dispatcher.intake.create import create_message
from dispatcher.intake.params import params_of
from schemas.db import session_scope
from schemas.models import Message
from schemas.types import utcnow
from tests.processes import Account, random_number
from workers.twoway.optouts import opt_out


def bulk(api_url: str, account: Account, items: object, **kwargs: object) -> httpx.Response:
    return httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages/Bulk", json=items, auth=account.auth,
        timeout=30, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_each_item_gets_its_message_or_its_own_error_in_order(
    api_url: str, account: Account
) -> None:
    # given: three good messages around two bad ones
    items = [
        {"To": random_number(), "From": account.number, "Body": "one"},
        {"To": "not a number", "From": account.number, "Body": "two"},
        {"To": random_number(), "From": account.number, "Body": "ж" * 71},
        "not an object",
        {"To": random_number(), "From": account.number, "MediaUrl": ["https://127.0.0.1:9/a.png"]},
    ]
    # when
    response = bulk(api_url, account, items)
    # then
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (3, 2)
    first, bad_to, unicode, not_object, mms = answer["results"]
    assert (first["body"], first["status"], first["sid"][:2]) == ("one", "queued", "SM")
    assert (bad_to["code"], bad_to["status"]) == (21211, 400)
    assert (unicode["num_segments"], unicode["encoding"]) == (2, "UCS-2")
    assert not_object["code"] == 20001
    assert (mms["sid"][:2], mms["num_media"]) == ("MM", 1)
    # and every accepted one is a message like any other
    for message in (first, unicode, mms):
        fetched = httpx.get(f"{api_url}{message['uri']}", auth=account.auth).json()
        assert fetched["sid"] == message["sid"]


def test_an_items_idempotency_key_works_within_the_batch_and_across_requests(
    api_url: str, account: Account
) -> None:
    key, to = uuid.uuid4().hex, random_number()
    item = {"To": to, "From": account.number, "Body": "once", "IdempotencyKey": key}
    # when: the key twice in one batch, then the batch again, then the key with other text
    first = bulk(api_url, account, [item, item]).json()["results"]
    again = bulk(api_url, account, [item]).json()["results"]
    other = bulk(api_url, account, [{**item, "Body": "changed"}]).json()["results"]
    # then
    assert first[0]["sid"] == first[1]["sid"] == again[0]["sid"]
    assert other[0]["code"] == 20409
    listed = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages", params={"To": to}, auth=account.auth
    ).json()["messages"]
    assert [m["sid"] for m in listed] == [first[0]["sid"]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], 20001),
        ({"To": "+15005550006"}, 20001),
        ([{"To": "+15005550006", "Body": "x"}] * 1001, 20001),
    ],
)
def test_a_body_that_is_not_1_to_1000_messages_is_refused_whole(
    api_url: str, account: Account, body: object, code: int
) -> None:
    response = bulk(api_url, account, body)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_bulk_takes_json_only(api_url: str, account: Account) -> None:
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages/Bulk", data={"To": "x"}, auth=account.auth
    )
    assert response.status_code == 415


def test_a_key_stored_by_another_request_while_the_batch_was_checked_answers_that_message(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch found no earlier message for its key; another request stores one before the
    batch's COPY. The batch's insert fails on the key, and each item is made on its own: that
    item answers the other request's message, the rest are created, nothing twice."""
    key, to = uuid.uuid4().hex, random_number()
    fields = {"To": to, "From": account.number, "Body": "raced"}
    others: list[Message] = []
    real_store = bulk_module.store

    def another_request_first(session: Session, messages: list[Message]) -> None:
        if not others:
            others.append(create_message(account.sid, params_of(fields), key))
        real_store(session, messages)

    monkeypatch.setattr(bulk_module, "store", another_request_first)
    first, raced, third = bulk_module.create_many(
        account.sid,
        [{"To": random_number(), "From": account.number, "Body": "one"},
         {**fields, "IdempotencyKey": key},
         {"To": random_number(), "From": account.number, "Body": "three"}],
    )  # fmt: skip
    assert isinstance(raced, Message)
    assert raced.sid == others[0].sid
    assert isinstance(first, Message)
    assert isinstance(third, Message)
    with session_scope() as session:
        keyed = session.exec(
            select(Message).where(
                Message.account_sid == account.sid, Message.idempotency_key == key
            )
        ).all()
        assert [m.sid for m in keyed] == [raced.sid]
        assert session.get(Message, first.sid) is not None


def test_an_item_to_an_opted_out_recipient_gets_21610_and_the_rest_are_sent(
    api_url: str, account: Account
) -> None:
    # given: a recipient who texted STOP to the account's number
    gone, kept = random_number(), random_number()
    with session_scope() as db:
        opt_out(db, account.sid, account.number, gone, "keyword", utcnow())
        db.commit()
    # when
    items = [{"To": gone, "From": account.number, "Body": "a"},
             {"To": kept, "From": account.number, "Body": "b"}]  # fmt: skip
    answer = bulk(api_url, account, items).json()
    # then
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    refused, sent = answer["results"]
    assert (refused["code"], refused["status"]) == (21610, 400)
    assert sent["status"] == "queued"
    with session_scope() as db:
        assert db.exec(select(Message).where(Message.to == gone)).first() is None
