"""Messages reach their final status through real processes: API, workers, beat, simulator."""

import time

import httpx
import pytest
from sqlmodel import select

from schemas.db import session_scope
from schemas.models import MessageEvent
from tests.e2e.conftest import Platform
from tests.processes import Account, new_account, random_number


def statuses_of(sid: str) -> list[str]:
    with session_scope() as session:
        events = session.exec(
            select(MessageEvent).where(MessageEvent.message_sid == sid).order_by(MessageEvent.id)
        ).all()
    return [event.status for event in events]


@pytest.mark.both_brokers
def test_single_sms_is_delivered(platform: Platform, account: Account) -> None:
    # when
    sent = platform.send(account, random_number(), "hello")
    message = platform.wait_terminal(account, [sent["sid"]])[sent["sid"]]
    # then
    assert message["status"] == "delivered"
    assert message["date_sent"] is not None
    assert message["error_code"] is None
    assert statuses_of(sent["sid"]) == ["queued", "sending", "sent", "delivered"]
    assert platform.counters(sent["sid"]) == {f"{sent['sid']}-1": 1}


@pytest.mark.both_brokers
def test_multipart_sms_is_delivered_when_every_part_is(
    platform: Platform, account: Account
) -> None:
    # given: 3 segments of GSM-7 and 2 of UCS-2
    bodies = ["a" * 307, "ж" * 71]
    # when
    sids = [platform.send(account, random_number(), body)["sid"] for body in bodies]
    done = platform.wait_terminal(account, sids)
    # then
    assert [done[sid]["status"] for sid in sids] == ["delivered", "delivered"]
    assert [done[sid]["num_segments"] for sid in sids] == [3, 2]
    assert platform.counters(sids[0]) == {f"{sids[0]}-{n}": 1 for n in (1, 2, 3)}
    assert platform.counters(sids[1]) == {f"{sids[1]}-{n}": 1 for n in (1, 2)}


OUTCOMES = [
    ("+15005550001", "failed", 30003),
    ("+15005550002", "failed", 30005),
    ("+15005550003", "failed", 30006),
    ("+15005550004", "failed", 30007),
    ("+15005550005", "failed", 30008),
    ("+15005550007", "delivered", None),
    ("+15005550008", "delivered", None),
]


@pytest.mark.parametrize(("to", "status", "code"), OUTCOMES, ids=[o[0] for o in OUTCOMES])
def test_simulator_outcomes(
    platform: Platform, account: Account, to: str, status: str, code: int | None
) -> None:
    # when
    sid = platform.send(account, to, "outcome")["sid"]
    message = platform.wait_terminal(account, [sid], timeout_s=30)[sid]
    # then
    assert (message["status"], message["error_code"]) == (status, code)
    if status == "failed":
        assert message["error_message"]
    history = statuses_of(sid)
    assert history[0] == "queued"
    assert history[-1] == status
    assert len(history) == len(set(history)), "a status was entered twice"


def test_message_without_receipt_stays_sent(platform: Platform, account: Account) -> None:
    sid = platform.send(account, "+15005550009", "silence")["sid"]
    deadline = time.monotonic() + 15
    while platform.fetch(account, sid)["status"] != "sent" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    assert platform.fetch(account, sid)["status"] == "sent"


def test_status_only_moves_forward(platform: Platform, account: Account) -> None:
    # given: a delivered message
    sid = platform.send(account, random_number(), "x")["sid"]
    platform.wait_terminal(account, [sid])
    segment_carrier_id = platform_carrier_id(sid)
    # when: the carrier reports, late, that it was undelivered after all
    response = httpx.post(
        f"{platform.api}/carrier/receipts",
        json={"receipts": [{"carrier_id": segment_carrier_id, "status": "undelivered",
                            "error_code": 30003}]},
        headers={"authorization": "Bearer dev-receipts-token"},
    )  # fmt: skip
    time.sleep(1.5)
    # then
    assert response.status_code == 200
    assert platform.fetch(account, sid)["status"] == "delivered"
    assert statuses_of(sid) == ["queued", "sending", "sent", "delivered"]


def platform_carrier_id(sid: str) -> str:
    from schemas.models import Segment

    with session_scope() as session:
        segment = session.exec(select(Segment).where(Segment.message_sid == sid)).one()
    assert segment.carrier_id
    return segment.carrier_id


def test_receipts_endpoint_requires_the_carrier_token(platform: Platform) -> None:
    response = httpx.post(
        f"{platform.api}/carrier/receipts",
        json={"receipts": []},
        headers={"authorization": "Bearer wrong"},
    )
    assert (response.status_code, response.json()["code"]) == (401, 20003)


@pytest.mark.both_brokers
def test_validity_period_expires_a_throttled_message(platform: Platform) -> None:
    # given: a sender allowed one segment per 10 s; the second message may wait only 2 s
    account = new_account(sps=0.1)
    first = platform.send(account, random_number(), "first")["sid"]
    second = platform.send(account, random_number(), "second", ValidityPeriod=2)["sid"]
    # when
    done = platform.wait_terminal(account, [first, second], timeout_s=20)
    # then
    assert done[first]["status"] == "delivered"
    assert (done[second]["status"], done[second]["error_code"]) == ("failed", 30001)
