"""The SMPP driver against the simulator's SMSC, over real loopback sockets: messages, their
outcomes and receipts.

The SMSC runs as a subprocess; receipts go to a list in this process instead of the inbox (the
end-to-end tests in ``tests/e2e/test_smpp.py`` store them for real). Every test sends to
destinations of its own, so tests sharing an SMSC never see each other's counters.
"""

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.conftest import BASE_REDIS_URL, RUN_REDIS_PREFIX
from tests.smpp_driver import Inbox, accepted_ids, destination, eventually, open_driver, submission
from tests.smsc import Smsc, smsc_process
from workers.carriers.base import Accepted, Deferred, Rejected
from workers.carriers.smpp.driver import SmppCarrierDriver
from workers.pipeline.throttle import TokenBucket


@pytest.fixture
def driver(smsc: Smsc, inbox: Inbox) -> Iterator[SmppCarrierDriver]:
    opened = open_driver(smsc, inbox)
    yield opened
    opened.close()


def test_a_plain_message_is_submitted_once_and_its_receipt_stored(
    driver: SmppCarrierDriver, inbox: Inbox, smsc: Smsc
) -> None:
    # given
    to = destination()
    # when
    [carrier_id] = accepted_ids(driver.submit([submission(to, "Hi @ £5 {ok}")]))
    # then: the SMSC took it once, as GSM-7 with a relative validity, and reported on it
    eventually(lambda: carrier_id in inbox.by_id())
    assert inbox.by_id()[carrier_id]["status"] == "delivered"
    assert len(carrier_id) == 36
    assert smsc.counters(to)["accepted"] == {f"{to}/-/1": 1}
    [sent] = smsc.submits(to)
    assert sent["text"] == "Hi \x00 \x015 \x1b(ok\x1b)"  # the default alphabet, unpacked
    assert (sent["data_coding"], sent["esm_class"], sent["registered_delivery"]) == (0, 0, 1)
    assert (sent["source_ton"], sent["source_npi"], sent["dest_ton"], sent["dest_npi"]) == (
        1, 1, 1, 1)  # fmt: skip
    assert sent["validity_period"].startswith("0000000")
    assert sent["validity_period"][-1] == "R"


def test_multipart_ucs2_from_an_alphanumeric_sender(
    driver: SmppCarrierDriver, inbox: Inbox, smsc: Smsc
) -> None:
    # given a three-part UCS-2 message from "MyShop" with reference 77
    to = destination()
    parts = [submission(to, f"Привет {n} 😀", part=n, total=3, ref=77, sender="MyShop",
                        encoding="UCS-2") for n in (1, 2, 3)]  # fmt: skip
    # when
    ids = accepted_ids(driver.submit(parts))
    # then: each part once, with the UDH of the message, and a receipt per part
    assert smsc.counters(to)["accepted"] == {f"{to}/77/{n}": 1 for n in (1, 2, 3)}
    sent = sorted(smsc.submits(to), key=lambda item: item["key"])
    assert [item["udh"] for item in sent] == [f"0500034d03{n:02x}" for n in (1, 2, 3)]
    assert [item["text"] for item in sent] == [f"Привет {n} 😀" for n in (1, 2, 3)]
    assert {(i["data_coding"], i["esm_class"], i["source_ton"], i["source_npi"],
             i["source_addr"]) for i in sent} == {(8, 0x40, 5, 0, "MyShop")}  # fmt: skip
    eventually(lambda: set(ids) <= set(inbox.by_id()))
    assert len(set(ids)) == 3


def test_every_outcome_of_the_table(driver: SmppCarrierDriver, inbox: Inbox) -> None:
    # when: one segment to each outcome number (retries of deferred ones as the stage would)
    numbers = [f"+150055500{n:02d}" for n in (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12)]
    results = {}
    for number in numbers:
        item = submission(number)
        for _attempt in range(3):
            result = driver.submit([item])[0]
            if not isinstance(result, Deferred):
                break
        results[number] = result
    # then: refusals at submit map to Twilio's codes, the rest to receipts
    refused = {n: (r.error_code, r.message) for n, r in results.items() if isinstance(r, Rejected)}
    assert refused == {
        "+15005550011": (21211, "ESME_RINVDSTADR: the SMSC refused the destination address"),
        "+15005550012": (30008, "ESME_RSUBMITFAIL: refused by the SMSC"),
    }
    ids = {n: r.carrier_id for n, r in results.items() if isinstance(r, Accepted)}
    expected = {"+15005550001": 30003, "+15005550002": 30005, "+15005550003": 30006,
                "+15005550004": 30007, "+15005550005": 30008, "+15005550007": None,
                "+15005550008": None, "+15005550010": None}  # fmt: skip
    eventually(lambda: {ids[n] for n in expected} <= set(inbox.by_id()))
    got = {n: inbox.by_id()[ids[n]]["error_code"] for n in expected}
    assert got == expected
    time.sleep(0.3)
    assert ids["+15005550009"] not in inbox.by_id()  # silent: no receipt, ever


@pytest.mark.e2e
def test_a_throttling_smsc_slows_the_bind_instead_of_failing_messages(inbox: Inbox) -> None:
    # given an SMSC that takes 150 submit_sm per second, and two task threads sharing a bind
    with smsc_process("--smpp-throttle-tps", "150") as throttling:
        driver = open_driver(throttling, inbox, timeout_s=5.0)
        to = destination()[:-2]
        batches = [[submission(f"{to}{n:02d}") for n in range(start, start + 50)]
                   for start in (0, 50)]  # fmt: skip
        try:
            # when
            started = time.monotonic()
            with ThreadPoolExecutor(2) as pool:
                results = [r for batch in pool.map(driver.submit, batches) for r in batch]
            took_s = time.monotonic() - started
            counters = throttling.counters(to)
        finally:
            driver.close()
    # then: every one accepted once, at about the SMSC's pace, with few refusals on the way
    assert all(isinstance(result, Accepted) for result in results), results
    assert sorted(counters["accepted"].values()) == [1] * 100
    assert took_s >= 0.4
    assert 0 < counters["throttled"] < 50, counters["throttled"]


def test_the_account_tps_is_shared_through_redis(smsc: Smsc, inbox: Inbox) -> None:
    # given two drivers (two processes' sessions) of one account limited to 40 submits/s
    bucket = TokenBucket(redis.Redis.from_url(BASE_REDIS_URL), f"{RUN_REDIS_PREFIX}smpp-tps")
    key = f"account-{uuid.uuid4().hex}"
    drivers = [open_driver(smsc, inbox, tps=40.0, tps_key=key, bucket=bucket) for _ in (1, 2)]
    to = destination()[:-2]
    try:
        # when each sends 20
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(
                lambda pair: pair[0].submit([submission(f"{to}{pair[1]}{n}") for n in range(20)]),
                [(drivers[0], 1), (drivers[1], 2)]))  # fmt: skip
        took_s = time.monotonic() - started
    finally:
        for one in drivers:
            one.close()
    # then: 40 at 40/s take about a second, not half of one
    assert all(isinstance(r, Accepted) for batch in results for r in batch)
    assert took_s >= 0.9, took_s


@pytest.mark.e2e
@pytest.mark.parametrize("policy", ["resend", "fail"])
def test_a_connection_cut_mid_window_is_an_unknown_outcome_under_the_policy(
    inbox: Inbox, policy: str
) -> None:
    # given a slow SMSC with a full window in flight
    with smsc_process("--latency-ms", "2000") as slow:
        driver = open_driver(slow, inbox, unknown_outcome=policy)
        to = destination()[:-2]
        try:
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    driver.submit, [submission(f"{to}{n:02d}") for n in range(10)]
                )
                eventually(lambda: len(slow.counters(to)["submits"]) == 10)
                # when the SMSC drops every connection
                slow.post("/smpp/drop")
                results = pending.result(10)
            # then: the bind comes back by itself
            eventually(lambda: driver.sender.binds == 2 and driver.sender.bound)
            again = driver.submit([submission(destination())])
        finally:
            driver.close()
    if policy == "resend":
        assert all(isinstance(r, Deferred) and "outcome unknown" in r.message for r in results)
    else:
        assert {(r.error_code, type(r)) for r in results} == {(30008, Rejected)}
        assert "MYCPAAS_SMPP_UNKNOWN_OUTCOME=fail" in results[0].message
    assert isinstance(again[0], Accepted)


def test_the_smscs_own_enquire_link_is_answered(driver: SmppCarrierDriver, smsc: Smsc) -> None:
    before = smsc.counters().get("enquire_link_answers", 0)
    eventually(lambda: smsc.counters().get("enquire_link_answers", 0) > before, 3)


def test_a_receipt_the_inbox_cannot_store_is_refused_and_comes_again(
    driver: SmppCarrierDriver, inbox: Inbox, smsc: Smsc
) -> None:
    # given a database down for the next store
    inbox.failures = 1
    # when
    [carrier_id] = accepted_ids(driver.submit([submission(destination())]))
    # then: the SMSC got ESME_RX_T_APPN, sent it again, and the second store kept it
    eventually(lambda: carrier_id in inbox.by_id())
    assert smsc.counters()["receipts_refused"] >= 1


def test_a_receipt_for_an_unknown_id_is_stored_as_it_came(
    driver: SmppCarrierDriver, inbox: Inbox, smsc: Smsc
) -> None:
    smsc.post("/smpp/receipt", json={"id": "00DEADBEEF", "stat": "UNDELIV", "err": 27})
    eventually(lambda: "deadbeef" in inbox.by_id())
    assert inbox.by_id()["deadbeef"]["error_code"] == 30003


def test_an_mo_the_store_cannot_take_is_refused_for_now_and_comes_again(
    smsc: Smsc, inbox: Inbox
) -> None:
    # given: the inbound store fails once (the database is down)
    parts = Inbox()
    parts.failures = 1
    driver = open_driver(smsc, inbox, on_inbound=parts)
    try:
        # when: a handset sends a message of two parts, the last first
        smsc.post("/mo", json={"from": "+4915112345678", "to": "+15005550006",
                               "body": "héllo wörld", "parts": 2, "reverse": True})  # fmt: skip
        eventually(lambda: {row["number"] for row in parts.rows} == {1, 2})
    finally:
        driver.close()
    # then: the SMSC was told to try again (ESME_RX_T_APPN), and a later store kept both (the
    # SMSC may have sent a part again meanwhile: the database keeps one of each)
    assert smsc.counters()["mo_refused"] >= 1
    stored = sorted({(row["number"], row["total"], row["text"]) for row in parts.rows})
    assert [(number, total) for number, total, _ in stored] == [(1, 2), (2, 2)]
    assert "".join(text for *_, text in stored) == "héllo wörld"
    assert {row["from_number"] for row in parts.rows} == {"+4915112345678"}
