"""Whether a PDU's body has the layout SMPP 3.4 gives its command: what a strict peer checks.

Real SMSCs decode every PDU they receive field by field and refuse one whose body is short,
long or malformed: Jasmin answers ``generic_nack`` and drops the session. The simulator's SMSC
checks every PDU the same way (so a driver that writes a wrong body fails its tests, not its
first deployment), and the driver checks what the SMSC sends it.
"""

from workers.carriers.smpp.pdu import (
    BINDS,
    Command,
    Pdu,
    PduError,
    Reader,
    ShortMessage,
    Status,
)

# Requests and responses that carry no body at all (SMPP 3.4 sections 4.1–4.11).
BODILESS = {
    Command.GENERIC_NACK,
    Command.ENQUIRE_LINK,
    Command.ENQUIRE_LINK_RESP,
    Command.UNBIND,
    Command.UNBIND_RESP,
}
# Responses whose body is a message_id C-octet string (NULL when unused), then nothing.
MESSAGE_ID_RESPONSES = {Command.SUBMIT_SM_RESP, Command.DELIVER_SM_RESP, Command.DATA_SM_RESP}
BIND_RESPONSES = {command | 0x80000000 for command in BINDS}


def check_layout(pdu: Pdu) -> None:
    """Raise :class:`PduError` unless ``pdu``'s body is what its command requires."""
    command, body = pdu.command_id, pdu.body
    if command in BODILESS:
        if body:
            raise PduError(f"{pdu.name} carries {len(body)} octets of body; it has none")
    elif command in BINDS:
        read = Reader(body)
        for size in (16, 9, 13):  # system_id, password, system_type
            read.cstring(size)
        read.octets(3)  # interface_version, addr_ton, addr_npi
        read.cstring(41)  # address_range
        _nothing_left(read, pdu)
    elif command in (Command.SUBMIT_SM, Command.DELIVER_SM):
        ShortMessage.decode(body)  # reads every field, then TLVs to the last octet
    elif command in MESSAGE_ID_RESPONSES:
        # submit_sm_resp alone may leave the body out when it refuses (section 4.4.2)
        if not body and command == Command.SUBMIT_SM_RESP and pdu.status != Status.ESME_ROK:
            return
        read = Reader(body)
        read.cstring(66)
        _nothing_left(read, pdu)
    elif command in BIND_RESPONSES:
        if not body and pdu.status != Status.ESME_ROK:
            return
        read = Reader(body)
        read.cstring(16)
        read.tlvs()  # sc_interface_version may follow


def _nothing_left(read: Reader, pdu: Pdu) -> None:
    if read.at != len(read.body):
        extra = len(read.body) - read.at
        raise PduError(f"{pdu.name} has {extra} octets past its last field", Status.ESME_RINVCMDLEN)
