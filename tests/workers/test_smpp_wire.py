"""What the driver writes on the wire, as a real SMSC reads it.

Jasmin's SMPP server refuses a 16-octet ``deliver_sm_resp`` (SMPP 3.4 gives it a NULL
``message_id``), answers ``generic_nack`` and drops the bind; the receipts come again and drop
it again. Every PDU of the driver's tests crosses ``tests.smpp_wire`` (Jasmin's own decoder);
here each response the driver writes is checked on its own, the simulator's SMSC is shown to
be as strict, and a storm of receipts after a rebind leaves the bind up.
"""

import io
import socket
import struct

import pytest
from smpp.pdu.pdu_encoding import PDUEncoder

from tests.smpp_driver import Inbox, accepted_ids, destination, eventually, open_driver, submission
from tests.smsc import Smsc, smsc_process
from workers.carriers.smpp.layout import check_layout
from workers.carriers.smpp.pdu import (
    BindBody,
    Command,
    Pdu,
    PduError,
    ShortMessage,
    Status,
    generic_nack,
    response,
    status_name,
)

RECEIPT = Pdu(Command.DELIVER_SM, 7, 0, ShortMessage("1", "2", b"id:1 stat:DELIVRD").encode())


@pytest.mark.parametrize(
    "written",
    [
        response(RECEIPT),
        response(RECEIPT, Status.ESME_RX_T_APPN),
        response(Pdu(Command.DATA_SM, 8)),
        response(Pdu(Command.ENQUIRE_LINK, 9)),
        response(Pdu(Command.UNBIND, 10)),
        generic_nack(11, Status.ESME_RINVCMDID),
        Pdu(Command.BIND_TRANSCEIVER, 12, 0, BindBody("mycpaas", "changeme").encode()),
    ],
    ids=lambda pdu: f"{pdu.name}-{pdu.status}",
)
def test_every_pdu_the_driver_writes_decodes_with_jasmins_codec(written: Pdu) -> None:
    # when Jasmin's decoder and ours read what the driver writes
    decoded = PDUEncoder().decode(io.BytesIO(written.encode()))
    check_layout(written)
    # then both take it, with its sequence and status
    assert (decoded.seqNum, decoded.status.name) == (written.sequence, status_name(written.status))


def test_a_deliver_sm_resp_carries_its_null_message_id() -> None:
    assert response(RECEIPT).encode() == struct.pack(">IIII", 17, 0x80000005, 0, 7) + b"\0"


@pytest.mark.parametrize(
    ("pdu", "why"),
    [
        (Pdu(Command.DELIVER_SM_RESP, 1), "unterminated"),
        (Pdu(Command.ENQUIRE_LINK_RESP, 1, 0, b"\0"), "it has none"),
        (Pdu(Command.SUBMIT_SM_RESP, 1, 0, b"abc"), "unterminated"),
        (Pdu(Command.DELIVER_SM_RESP, 1, 0, b"\0\0"), "past its last field"),
    ],
)
def test_a_body_off_its_layout_is_refused(pdu: Pdu, why: str) -> None:
    with pytest.raises(PduError, match=why):
        check_layout(pdu)


def _read_pdu(sock: socket.socket) -> Pdu:
    header = sock.recv(16, socket.MSG_WAITALL)
    length, command_id, status, sequence = struct.unpack(">IIII", header)
    body = sock.recv(length - 16, socket.MSG_WAITALL) if length > 16 else b""
    return Pdu(command_id, sequence, status, body)


def test_the_simulator_drops_a_session_that_writes_a_malformed_pdu(smsc: Smsc) -> None:
    # given a bound session straight to the simulator (no check in between)
    with socket.create_connection(("127.0.0.1", smsc.direct_port), timeout=5) as sock:
        bind = BindBody("raw", "pw").encode()
        sock.sendall(Pdu(Command.BIND_TRANSCEIVER, 1, 0, bind).encode())
        assert _read_pdu(sock).status == Status.ESME_ROK
        before = smsc.counters().get("malformed", 0)
        # when it answers a deliver_sm the way Jasmin refuses: 16 octets, no message_id
        sock.sendall(struct.pack(">IIII", 16, Command.DELIVER_SM_RESP, 0, 2))
        # then: generic_nack with sequence 0, and the session is closed
        nack = _read_pdu(sock)
        assert (nack.command_id, nack.sequence) == (Command.GENERIC_NACK, 0)
        assert sock.recv(1) == b""
    assert smsc.counters()["malformed"] == before + 1


@pytest.mark.e2e
def test_a_storm_of_receipts_after_a_rebind_leaves_the_bind_up() -> None:
    # given receipts that come 300 ms after each submit
    with smsc_process("--receipt-delay-ms", "300", "--smpp-receipt-resend-s", "0.5") as smsc:
        inbox = Inbox()
        driver = open_driver(smsc, inbox)
        try:
            to = destination()
            parts = [submission(to, f"part {n}", part=n, total=200, ref=9) for n in range(1, 201)]
            ids = accepted_ids(driver.submit(parts))
            # when the connection drops before any receipt, and new ones are refused a moment
            smsc.post("/smpp/drop", refuse_s=1.0)
            # then: on the next bind all 200 receipts arrive at once, each is stored and
            # answered, and the bind stays up (one rebind, nothing malformed)
            eventually(lambda: set(ids) <= set(inbox.by_id()), 20)
            eventually(lambda: smsc.counters()["receipts_pending"] == 0, 10)
            assert driver.sender.binds == 2
            assert smsc.counters().get("malformed", 0) == 0
        finally:
            driver.close()
