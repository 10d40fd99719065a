"""SMPP 3.4 PDUs: the header, the bodies an ESME and our simulator exchange, TLVs.

A PDU is ``command_length`` (4 octets, the whole PDU), ``command_id``, ``command_status``,
``sequence_number`` (4 each, big-endian), then the body. Only what the driver and the simulator
use is modelled: bind/unbind, enquire_link, generic_nack, submit_sm and deliver_sm (one body
shape, :class:`ShortMessage`) and their responses. Anything else is still framed and parsed as
a header, so a session can answer it with ``generic_nack``.

Malformed input raises :class:`PduError` carrying the command status to answer with.
"""

import struct
from dataclasses import dataclass, field
from enum import IntEnum

HEADER = struct.Struct(">IIII")
HEADER_BYTES = HEADER.size
MAX_PDU_BYTES = 65_536  # far above any PDU we exchange (short_message <= 254, payload <= 64 KiB)
INTERFACE_VERSION = 0x34  # SMPP 3.4
RESPONSE_BIT = 0x80000000


class Command(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    CANCEL_SM = 0x00000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


BINDS = (Command.BIND_TRANSMITTER, Command.BIND_RECEIVER, Command.BIND_TRANSCEIVER)


class Status(IntEnum):
    """The command statuses of SMPP 3.4 section 5.1.3 (vendor-specific ones have no name)."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED``, or ``0x00000401`` for a status SMPP 3.4 does not name."""
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08x}"


class Tag(IntEnum):
    """The optional parameters (TLVs) we read or write."""

    RECEIPTED_MESSAGE_ID = 0x001E
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class PduError(Exception):
    """Input that is not a well-formed PDU; ``status`` is what to answer it with."""

    def __init__(self, message: str, status: Status = Status.ESME_RINVCMDLEN) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pdu:
    command_id: int
    sequence: int
    status: int = 0
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def name(self) -> str:
        try:
            return Command(self.command_id).name.lower()
        except ValueError:
            return f"command 0x{self.command_id:08x}"

    def encode(self) -> bytes:
        return (
            HEADER.pack(HEADER_BYTES + len(self.body), self.command_id, self.status, self.sequence)
            + self.body
        )


def read_header(octets: bytes) -> tuple[int, int, int, int]:
    """``(command_length, command_id, command_status, sequence_number)`` of a header."""
    length, command_id, status, sequence = HEADER.unpack(octets)
    if not HEADER_BYTES <= length <= MAX_PDU_BYTES:
        raise PduError(f"command_length {length} out of range")
    return length, command_id, status, sequence


def decode(octets: bytes) -> Pdu:
    """A whole PDU (header included)."""
    length, command_id, status, sequence = read_header(octets[:HEADER_BYTES])
    if length != len(octets):
        raise PduError(f"command_length {length} but {len(octets)} octets")
    return Pdu(command_id, sequence, status, octets[HEADER_BYTES:])


# Responses whose body is a ``message_id`` C-octet string even when it is unused: SMPP 3.4
# sets it to NULL (one 0x00 octet) in deliver_sm_resp and data_sm_resp, whatever the status.
# Real SMSCs refuse the bodiless 16-octet form (Jasmin answers generic_nack and drops the bind).
_NULL_MESSAGE_ID = {Command.DELIVER_SM, Command.DATA_SM}


def response(request: Pdu, status: int = Status.ESME_ROK, body: bytes = b"") -> Pdu:
    if not body and request.command_id in _NULL_MESSAGE_ID:
        body = b"\0"
    return Pdu(request.command_id | RESPONSE_BIT, request.sequence, status, body)


def generic_nack(sequence: int, status: int) -> Pdu:
    return Pdu(Command.GENERIC_NACK, sequence, status)


# --- field codecs -----------------------------------------------------------------------------


def cstring(value: str, max_octets: int) -> bytes:
    """A C-octet string of at most ``max_octets`` octets, its NUL included."""
    octets = value.encode("ascii")
    if len(octets) >= max_octets:
        raise ValueError(f"{value!r} is longer than {max_octets - 1} characters")
    return octets + b"\0"


class Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def cstring(self, max_octets: int) -> str:
        end = self.body.find(b"\0", self.at, self.at + max_octets)
        if end < 0:
            raise PduError("C-octet string unterminated or too long", Status.ESME_RINVMSGLEN)
        value = self.body[self.at : end].decode("latin-1")
        self.at = end + 1
        return value

    def octet(self) -> int:
        if self.at >= len(self.body):
            raise PduError("body ends early", Status.ESME_RINVMSGLEN)
        self.at += 1
        return self.body[self.at - 1]

    def octets(self, count: int) -> bytes:
        if self.at + count > len(self.body):
            raise PduError("body ends early", Status.ESME_RINVMSGLEN)
        self.at += count
        return self.body[self.at - count : self.at]

    def tlvs(self) -> dict[int, bytes]:
        found = {}
        while self.at < len(self.body):
            if self.at + 4 > len(self.body):
                raise PduError("truncated TLV", Status.ESME_RINVOPTPARSTREAM)
            tag, size = struct.unpack_from(">HH", self.body, self.at)
            self.at += 4
            found[tag] = self.octets(size)
        return found


def encode_tlvs(tlvs: dict[int, bytes]) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(value)) + value for tag, value in tlvs.items())


# --- bodies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BindBody:
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode(self) -> bytes:
        return (
            cstring(self.system_id, 16)
            + cstring(self.password, 9)
            + cstring(self.system_type, 13)
            + bytes([self.interface_version, self.addr_ton, self.addr_npi])
            + cstring(self.address_range, 41)
        )

    @classmethod
    def decode(cls, body: bytes) -> "BindBody":
        read = Reader(body)
        return cls(
            read.cstring(16),
            read.cstring(9),
            read.cstring(13),
            read.octet(),
            read.octet(),
            read.octet(),
            read.cstring(41),
        )


def message_id_body(message_id: str) -> bytes:
    """The body of submit_sm_resp (and of bind responses: the system_id)."""
    return cstring(message_id, 66)


def read_message_id(body: bytes) -> str:
    """The C-octet string a submit_sm_resp or bind response carries; empty for an empty body."""
    return Reader(body).cstring(66) if body else ""


ESM_UDHI = 0x40  # esm_class: short_message starts with a User Data Header
ESM_RECEIPT = 0x04  # esm_class message type: SMSC delivery receipt
ESM_TYPE_MASK = 0x3C
DATA_CODING_DEFAULT = 0x00  # SMSC default alphabet: GSM 03.38 here
DATA_CODING_UCS2 = 0x08  # UCS-2 (UTF-16 big-endian)


@dataclass(frozen=True)
class ShortMessage:
    """The body of ``submit_sm`` and ``deliver_sm`` (the same fields in SMPP 3.4)."""

    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    data_coding: int = 0
    service_type: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        if len(self.short_message) > 254:
            raise ValueError("short_message holds at most 254 octets")
        return (
            cstring(self.service_type, 6)
            + bytes([self.source_addr_ton, self.source_addr_npi])
            + cstring(self.source_addr, 21)
            + bytes([self.dest_addr_ton, self.dest_addr_npi])
            + cstring(self.destination_addr, 21)
            + bytes([self.esm_class, self.protocol_id, self.priority_flag])
            + cstring(self.schedule_delivery_time, 17)
            + cstring(self.validity_period, 17)
            + bytes([self.registered_delivery, 0, self.data_coding, 0, len(self.short_message)])
            + self.short_message
            + encode_tlvs(self.tlvs)
        )

    @classmethod
    def decode(cls, body: bytes) -> "ShortMessage":
        read = Reader(body)
        service_type = read.cstring(6)
        source_ton, source_npi, source = read.octet(), read.octet(), read.cstring(21)
        dest_ton, dest_npi, dest = read.octet(), read.octet(), read.cstring(21)
        esm_class, protocol_id, priority = read.octet(), read.octet(), read.octet()
        schedule, validity = read.cstring(17), read.cstring(17)
        registered, _replace, data_coding, _default_id = (
            read.octet(),
            read.octet(),
            read.octet(),
            read.octet(),
        )
        short_message = read.octets(read.octet())
        return cls(
            source,
            dest,
            short_message,
            source_ton,
            source_npi,
            dest_ton,
            dest_npi,
            esm_class,
            protocol_id,
            priority,
            schedule,
            validity,
            registered,
            data_coding,
            service_type,
            read.tlvs(),
        )

    @property
    def text_octets(self) -> bytes:
        """The user data without its UDH (the ``message_payload`` TLV when short_message is
        empty)."""
        data = self.short_message or self.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")
        if self.esm_class & ESM_UDHI and data:
            return data[1 + data[0] :]
        return data

    @property
    def concatenation(self) -> tuple[int, int, int] | None:
        """``(reference, total, part)`` from an 8-bit or 16-bit concatenation UDH, if any."""
        if not self.esm_class & ESM_UDHI or not self.short_message:
            return None
        udh = self.short_message[1 : 1 + self.short_message[0]]
        at = 0
        while at + 2 <= len(udh):
            iei, size = udh[at], udh[at + 1]
            value = udh[at + 2 : at + 2 + size]
            if iei == 0x00 and size == 3:
                return value[0], value[1], value[2]
            if iei == 0x08 and size == 4:
                return (value[0] << 8) | value[1], value[2], value[3]
            at += 2 + size
        return None


def concatenation_udh(reference: int, total: int, part: int) -> bytes:
    """The 6-octet UDH of part ``part`` of ``total`` (8-bit reference, IEI 0x00)."""
    return bytes([0x05, 0x00, 0x03, reference & 0xFF, total, part])
