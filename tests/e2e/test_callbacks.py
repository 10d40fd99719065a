"""Status callbacks through real processes and real receivers: signed, ordered, retried."""

import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from schemas.credentials import webhook_secret
from schemas.db import session_scope
from schemas.models import Account as AccountRow
from tests.e2e.conftest import NO_MEDIA, Platform, launch
from tests.processes import Account, new_account, random_number
from tests.receiver import Receiver, running_receiver

ORDER = ["sending", "sent", "delivered"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def secret_of(account: Account) -> str:
    with session_scope() as session:
        row = session.get(AccountRow, account.sid)
        assert row is not None
        return webhook_secret(row.sid, row.token_salt)


def ledger(platform: Platform, account: Account, sid: str) -> list[dict]:
    return httpx.get(
        f"{platform.api}/v1/Accounts/{account.sid}/Messages/{sid}/Callbacks", auth=account.auth
    ).json()["callbacks"]


def wait_states(
    platform: Platform, account: Account, sid: str, expected: list[str], timeout_s: float = 40
) -> list[dict]:
    """Poll the callback ledger until its states are ``expected``; returns the ledger."""
    deadline = time.monotonic() + timeout_s
    entries = ledger(platform, account, sid)
    while [e["state"] for e in entries] != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        entries = ledger(platform, account, sid)
    assert [e["state"] for e in entries] == expected
    return entries


@pytest.mark.both_brokers
def test_every_status_after_queued_is_called_back_signed(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    # given
    url = receiver.url("/ok?tenant=7#rc=2")  # Twilio's connection overrides live in the fragment
    # when
    sid = platform.send(account, random_number(), "hi", StatusCallback=url)["sid"]
    got = receiver.wait_for(sid, 3)
    # then: one per status, in order, Twilio's parameters, both signatures valid
    assert [r.params["MessageStatus"] for r in got] == ORDER
    validator = RequestValidator(account.token)
    webhook = Webhook(secret_of(account))
    for request in got:
        assert request.path == "/ok?tenant=7"
        assert request.params["SmsStatus"] == request.params["MessageStatus"]
        assert request.params["MessageSid"] == request.params["SmsSid"] == sid
        assert request.params["AccountSid"] == account.sid
        assert request.params["From"] == account.number
        assert request.params["ApiVersion"] == "2010-04-01"
        assert validator.validate(
            receiver.url("/ok?tenant=7"), request.params, request.headers["x-twilio-signature"]
        )
        webhook.verify(request.body, request.headers, json_parse=False)  # a form body
        assert request.headers["webhook-id"] == f"{sid}.{request.params['MessageStatus']}"


def test_failure_callback_carries_the_error(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    sid = platform.send(account, "+15005550004", "x", StatusCallback=receiver.url("/ok"))["sid"]
    got = receiver.wait_for(sid, 2)
    assert [r.params["MessageStatus"] for r in got] == ["sending", "failed"]
    assert got[-1].params["ErrorCode"] == "30007"


def test_order_holds_under_random_receiver_latency(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    # when
    sids = [
        platform.send(account, random_number(), f"o{i}", StatusCallback=receiver.url("/slow"))[
            "sid"
        ]
        for i in range(15)
    ]
    # then
    for sid in sids:
        got = receiver.wait_for(sid, 3)
        assert [r.params["MessageStatus"] for r in got] == ORDER


@pytest.mark.both_brokers
def test_retry_then_success_keeps_the_webhook_id(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    # given: the endpoint answers 500 twice to each event
    sid = platform.send(account, random_number(), "x", StatusCallback=receiver.url("/flaky/2"))[
        "sid"
    ]
    # when
    got = receiver.wait_for(sid, 9)
    # then
    statuses = [r.params["MessageStatus"] for r in got]
    assert statuses == ["sending"] * 3 + ["sent"] * 3 + ["delivered"] * 3
    assert len({r.headers["webhook-id"] for r in got[:3]}) == 1
    entries = wait_states(platform, account, sid, ["delivered"] * 3, timeout_s=5)
    assert [a["status_code"] for a in entries[0]["attempt_log"]] == [500, 500, 200]
    assert all(a["latency_ms"] >= 0 for a in entries[0]["attempt_log"])


def test_endpoint_down_for_the_window_is_dead_lettered_then_replayed(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    # given: an endpoint that stays down through every attempt (4 in this platform)
    receiver.down.set()
    try:
        sid = platform.send(account, random_number(), "x", StatusCallback=receiver.url("/down"))[
            "sid"
        ]
        # then: each event was tried 4 times, in order, and dead-lettered
        entries = wait_states(platform, account, sid, ["dead"] * 3)
        assert [e["status"] for e in entries] == ORDER
        assert [a["status_code"] for a in entries[0]["attempt_log"]] == [503] * 4
    finally:
        receiver.down.clear()
    # when: the customer fixed the endpoint and replays
    replay = httpx.post(
        f"{platform.api}/v1/Accounts/{account.sid}/Messages/{sid}/Callbacks/Replay",
        auth=account.auth,
    )
    # then
    assert replay.status_code == 200
    got = receiver.wait_for(sid, 3 * 4 + 3)
    assert [r.params["MessageStatus"] for r in got[-3:]] == ORDER
    wait_states(platform, account, sid, ["delivered"] * 3, timeout_s=5)


def test_410_gone_stops_callbacks_for_that_url(
    platform: Platform, account: Account, receiver: Receiver
) -> None:
    sid = platform.send(account, random_number(), "x", StatusCallback=receiver.url("/gone"))["sid"]
    platform.wait_terminal(account, [sid])
    wait_states(platform, account, sid, ["gone", "skipped", "skipped"], timeout_s=10)
    assert len(receiver.for_message(sid)) == 1


def test_4xx_is_final(platform: Platform, account: Account, receiver: Receiver) -> None:
    sid = platform.send(account, random_number(), "x", StatusCallback=receiver.url("/bad"))["sid"]
    got = receiver.wait_for(sid, 3)
    time.sleep(0.5)
    assert len(receiver.for_message(sid)) == len(got) == 3  # each event tried once, none retried


def test_a_hanging_endpoint_does_not_slow_a_healthy_one(
    platform: Platform, receiver: Receiver
) -> None:
    # given: the healthy endpoint's latency, from acceptance to the 'delivered' callback
    account = new_account()

    def healthy_latencies(count: int) -> list[float]:
        sent = {}
        for i in range(count):
            sid = platform.send(
                account, random_number(), f"h{i}", StatusCallback=receiver.url("/ok")
            )["sid"]
            sent[sid] = time.monotonic()
        return [receiver.wait_for(sid, 3)[-1].at - started for sid, started in sent.items()]

    def baseline_then_beside_hanging() -> tuple[float, float]:
        baseline = statistics.median(healthy_latencies(20))
        # when: another customer's endpoint (another host) hangs on every callback
        with running_receiver() as hanging:
            hanging.release.clear()
            for i in range(20):
                platform.send(
                    account, random_number(), f"x{i}", StatusCallback=hanging.url("/hang")
                )
            deadline = time.monotonic() + 20
            while len(hanging.requests) < 8 and time.monotonic() < deadline:
                time.sleep(0.05)  # its callbacks are now holding connections open
            assert len(hanging.requests) >= 8
            return baseline, statistics.median(healthy_latencies(20))

    healthy_latencies(5)  # warm-up: first connections, first queries
    # then: the healthy endpoint's median stays under twice its baseline (it never waits for
    # the hanging one's 3 s timeout). The two cores are shared with whatever else runs: a burst
    # landing in one half of a pair moves its ratio, so a pair over 2x is measured once more.
    for _ in range(2):
        baseline, loaded = baseline_then_beside_hanging()
        print(f"healthy endpoint median latency: baseline {baseline * 1000:.0f} ms, "
              f"beside a hanging endpoint {loaded * 1000:.0f} ms")  # fmt: skip
        if loaded < 2 * baseline:
            break
    assert loaded < 2 * baseline


def test_kill_9_mid_delivery_still_delivers_with_the_same_webhook_id(
    database: str, tmp_path: Path
) -> None:
    with (
        running_receiver() as receiver,
        launch(tmp_path, workers=("segment", "carrier", "maintenance")) as platform,
    ):
        # given: a callbacks worker whose deliveries hang at the receiver
        account = platform.new_account()
        receiver.release.clear()
        victim = platform.start_worker("callbacks", "victim")
        sid = platform.send(account, random_number(), "x", StatusCallback=receiver.url("/hang"))[
            "sid"
        ]
        receiver.wait_for(sid, 1)
        # when: the worker dies mid-delivery, the receiver recovers, a new worker starts
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        receiver.release.set()
        platform.start_worker("callbacks", "survivor")
        got = receiver.wait_for(sid, 4, timeout_s=40)
    # then: every status arrived; the one repeated carries the same webhook-id
    statuses = [r.params["MessageStatus"] for r in got]
    assert statuses[0] == statuses[1] == "sending"
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    assert statuses[-3:] == ORDER


def test_a_busy_endpoint_costs_no_database_writes(database: str, tmp_path: Path) -> None:
    with (
        running_receiver() as receiver,
        launch(tmp_path, workers=NO_MEDIA, MYCPAAS_CALLBACK_MAX_PER_HOST="2") as platform,
    ):
        # given: an endpoint that takes up to 150 ms per callback, capped at 2 at once
        account = platform.new_account()
        # when: 30 messages owe it 90 callbacks, most of them due while it is busy
        sids = [
            platform.send(account, random_number(), f"b{i}", StatusCallback=receiver.url("/slow"))[
                "sid"
            ]
            for i in range(30)
        ]
        for sid in sids:
            assert [r.params["MessageStatus"] for r in receiver.wait_for(sid, 3, 60)] == ORDER
        platform.stop_all()  # the platform's connections close: their statistics are flushed
        time.sleep(0.5)
        with psycopg.connect(platform.env["MYCPAAS_DATABASE_URL"]) as conn:
            attempts = conn.execute("SELECT count(*) FROM callback_attempts").fetchone()
            updates = conn.execute(
                "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'callbacks'"
            ).fetchone()
    # then: the cap held, and each callback cost its claim, its result and (if it was owed
    # while its message's previous one was still out) its release, nothing more: a callback
    # waiting for a slot waited in memory, not as a postponement written back
    assert receiver.most_in_flight <= 2
    assert attempts == (90,)
    assert updates is not None
    assert updates[0] <= 2 * 90 + 60


def test_the_sending_callback_does_not_wait_for_the_carrier(database: str, tmp_path: Path) -> None:
    with running_receiver() as receiver, launch(tmp_path, workers=NO_MEDIA,
                                                latency_ms=2000) as platform:  # fmt: skip
        # given a carrier that takes two seconds to answer a hand-off
        account = platform.new_account()
        waits = []
        for n in range(4):
            # when a message is handed to it
            posted = time.monotonic()
            url = receiver.url("/ok")
            sid = platform.send(account, random_number(), f"code {n}", StatusCallback=url)["sid"]
            [sending] = receiver.wait_for(sid, 1, 10)
            # then its 'sending' callback comes while the carrier still has it, not with 'sent'
            # (nor a second later, when an idle deliverer looks for due callbacks anyway)
            assert platform.fetch(account, sid)["status"] == "sending"
            assert sending.params["MessageStatus"] == "sending"
            waits.append(sending.at - posted)
            got = receiver.wait_for(sid, 3, 20)
            assert [r.params["MessageStatus"] for r in got] == ORDER
        assert max(waits) < 0.6, waits
