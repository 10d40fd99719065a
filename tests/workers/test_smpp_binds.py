"""The SMPP driver's binds against an SMSC over real loopback sockets: keeping them alive,
refused passwords, unbinding, commands it does not know, TLS, and separate transmitter and
receiver binds."""

import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.smpp_driver import Inbox, destination, eventually, open_driver, opened_driver, submission
from tests.smsc import Smsc, smsc_process
from workers.carriers.base import Accepted, Deferred
from workers.carriers.smpp.bind import BindConfig
from workers.carriers.smpp.driver import SmppCarrierDriver, SmppConfig
from workers.carriers.smpp.pdu import HEADER, Command, Status


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


@pytest.mark.e2e
def test_a_refused_password_backs_off_and_defers(inbox: Inbox) -> None:
    # given an SMSC that wants another password
    with smsc_process("--smpp-password", "secret") as strict, \
            opened_driver(strict, inbox, password="wrong", timeout_s=1.0, wait_bound=False) as driver:  # fmt: skip
        # when it has tried for 3 s
        time.sleep(3)
        refusals = strict.counters()["bind_refusals"]
        result = driver.submit([submission(destination())])[0]
    # then: a few tries (0.5 s doubling, with jitter), not a spin; nothing sent
    assert 1 <= refusals <= 4, refusals
    assert isinstance(result, Deferred)
    assert "not bound" in result.message


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
