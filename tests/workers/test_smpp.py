"""The SMPP driver against the simulator's SMSC, over real loopback sockets.

The SMSC runs as a subprocess; receipts go to a list in this process instead of the inbox (the
end-to-end tests in ``tests/e2e/test_smpp.py`` store them for real). Every test sends to
destinations of its own, so tests sharing an SMSC never see each other's counters.
"""

import random
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import BASE_REDIS_URL, RUN_REDIS_PREFIX
from tests.smsc import Smsc, smsc_process
from workers.carriers.base import Accepted, Deferred, Rejected, Submission
from workers.carriers.smpp.driver import SmppCarrierDriver, SmppConfig
from workers.carriers.smpp.pdu import HEADER, Command, Status
from workers.carriers.smpp.session import BindConfig
from workers.pipeline.throttle import TokenBucket

SENDER = "+4915112345678"


class Inbox:
    """Receipts as the driver hands them over; can be told to fail the next stores."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.failures = 0
        self._lock = threading.Lock()

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("database down")
            self.rows.extend(rows)

    def by_id(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {row["carrier_id"]: row for row in self.rows}


def destination() -> str:
    return f"+1202{random.randrange(1_000_000, 9_999_999)}"


def submission(to: str, text: str = "hello", *, part: int = 1, total: int = 1, ref: int = 0,
               sender: str = SENDER, encoding: str = "GSM-7") -> Submission:  # fmt: skip
    return Submission(f"SM{uuid.uuid4().hex}-{part}", to, sender, text, part, total, ref,
                      encoding=encoding,
                      expires_at=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def smsc() -> Iterator[Smsc]:
    with smsc_process("--receipt-delay-ms", "20", "--smpp-receipt-resend-s", "0.5",
                      "--smpp-enquire-link-s", "0.5") as running:  # fmt: skip
        yield running


def open_driver(smsc: Smsc, inbox: Inbox, **options: Any) -> SmppCarrierDriver:
    bind_options = {key: options.pop(key) for key in list(options)
                    if key in ("password", "window", "enquire_link_s", "timeout_s", "port", "tls")}  # fmt: skip
    bind = BindConfig(**{"host": "127.0.0.1", "port": smsc.port, "system_id": "test",
                         "password": "pw", "timeout_s": 3.0, **bind_options})  # fmt: skip
    bucket = options.pop("bucket", None)
    driver = SmppCarrierDriver(SmppConfig(bind=bind, **options), inbox, bucket)
    eventually(lambda: driver.sender.bound, 5)
    return driver


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def driver(smsc: Smsc, inbox: Inbox) -> Iterator[SmppCarrierDriver]:
    opened = open_driver(smsc, inbox)
    yield opened
    opened.close()


def accepted_ids(results: list[Any]) -> list[str]:
    assert all(isinstance(result, Accepted) for result in results), results
    return [result.carrier_id for result in results]


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


def test_an_unanswered_enquire_link_reconnects(smsc: Smsc, inbox: Inbox) -> None:
    # given a bind that asks after 0.3 s of silence and waits 1 s for the answer
    driver = open_driver(smsc, inbox, enquire_link_s=0.3, timeout_s=1.0)
    try:
        # when the SMSC hangs: it reads but answers nothing on the connections it has
        smsc.post("/smpp/mute", seconds=5)
        # then: the driver gives up on the connection and binds again
        eventually(lambda: driver.sender.binds == 2 and driver.sender.bound, 5)
        assert isinstance(driver.submit([submission(destination())])[0], Accepted)
    finally:
        driver.close()


def test_the_smscs_own_enquire_link_is_answered(driver: SmppCarrierDriver, smsc: Smsc) -> None:
    before = smsc.counters().get("enquire_link_answers", 0)
    eventually(lambda: smsc.counters().get("enquire_link_answers", 0) > before, 3)


def test_a_refused_password_backs_off_and_defers(inbox: Inbox) -> None:
    # given an SMSC that wants another password
    with smsc_process("--smpp-password", "secret") as strict:
        bind = BindConfig("127.0.0.1", strict.port, "test", "wrong", timeout_s=1.0)
        driver = SmppCarrierDriver(SmppConfig(bind=bind), inbox)
        try:
            # when it has tried for 3 s
            time.sleep(3)
            refusals = strict.counters()["bind_refusals"]
            result = driver.submit([submission(destination())])[0]
        finally:
            driver.close()
    # then: a few tries (0.5 s doubling, with jitter), not a spin; nothing sent
    assert 1 <= refusals <= 4, refusals
    assert isinstance(result, Deferred)
    assert "not bound" in result.message


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


def test_closing_unbinds(smsc: Smsc, inbox: Inbox) -> None:
    driver = open_driver(smsc, inbox)
    before = smsc.counters().get("unbinds", 0)
    driver.close()
    assert smsc.counters()["unbinds"] == before + 1


def test_requests_it_does_not_understand_get_generic_nack(inbox: Inbox) -> None:
    # given an SMSC of a few lines that binds anyone, then sends a command nobody knows
    answers: list[tuple[int, int]] = []
    server = socket.create_server(("127.0.0.1", 0))

    def smsc() -> None:
        conn, _ = server.accept()
        with conn:
            length, command, _status, sequence = HEADER.unpack(conn.recv(16))
            conn.recv(length - 16)
            conn.sendall(HEADER.pack(16 + 6, command | 0x80000000, 0, sequence) + b"smsc!\0")
            conn.sendall(HEADER.pack(16, 0x00000099, 0, 42))
            while True:
                header = conn.recv(16)
                if len(header) < 16:
                    return
                length, command, status, sequence = struct.unpack(">IIII", header)
                conn.recv(length - 16) if length > 16 else b""
                if sequence == 42:
                    answers.append((command, status))
                    return

    thread = threading.Thread(target=smsc, daemon=True)
    thread.start()
    bind = BindConfig("127.0.0.1", server.getsockname()[1], "test", "pw", timeout_s=2.0)
    driver = SmppCarrierDriver(SmppConfig(bind=bind), inbox)
    try:
        thread.join(5)
    finally:
        driver.close()
        server.close()
    assert answers == [(Command.GENERIC_NACK, Status.ESME_RINVCMDID)]


def tls_front(cert: Path, key: Path, backend_port: int) -> tuple[int, threading.Thread]:
    """A TLS end for one connection, relayed in the clear to ``backend_port``."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def relay() -> None:
        with listener:
            raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as tls, \
                socket.create_connection(("127.0.0.1", backend_port)) as plain:  # fmt: skip
            peers = {tls: plain, plain: tls}
            while True:
                ready = [tls] if tls.pending() else select.select(list(peers), [], [], 10)[0]
                if not ready:
                    return
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    peers[source].sendall(data)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_tls_to_the_smsc(smsc: Smsc, inbox: Inbox, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # given the SMSC behind TLS with a certificate for 127.0.0.1 that this process trusts
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    port, relay = tls_front(cert, key, smsc.port)
    # when
    driver = open_driver(smsc, inbox, port=port, tls=True)
    try:
        [result] = driver.submit([submission(destination())])
        assert isinstance(result, Accepted)
        eventually(lambda: result.carrier_id in inbox.by_id())
    finally:
        driver.close()
    relay.join(5)
    # then: bound, sent and reported through TLS
    assert driver.sender.binds == 1


def test_a_transmitter_and_a_receiver_bind(smsc: Smsc, inbox: Inbox) -> None:
    # given the two-bind mode
    before = smsc.counters()["bound"]
    driver = open_driver(smsc, inbox, mode="transmitter+receiver")
    try:
        eventually(lambda: all(link.bound for link in driver.links))
        bound = smsc.counters()["bound"] - before
        # when
        [result] = driver.submit([submission(destination())])
        # then: sent on the transmitter, reported on the receiver
        assert isinstance(result, Accepted)
        eventually(lambda: result.carrier_id in inbox.by_id())
    finally:
        driver.close()
    assert bound == 2
    assert [link.command for link in driver.links] == [
        Command.BIND_TRANSMITTER,
        Command.BIND_RECEIVER,
    ]
