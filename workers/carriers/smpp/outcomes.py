"""What SMPP answers mean for a segment: command statuses, delivery receipts, message ids.

``submit_sm_resp`` statuses (docs/carriers.md carries this table):

- ``ESME_ROK``: accepted; its ``message_id`` is the segment's carrier id.
- ``ESME_RTHROTTLED``, ``ESME_RMSGQFUL``: not taken; the bind pauses (back-pressure) and the
  segment goes again after the pause.
- address errors: failed with Twilio's code for a bad ``To`` (21211) or ``From`` (21212).
- anything else: failed with 30008, the status's name in ``error_message``.

Receipts are ``deliver_sm`` with ``esm_class`` 0x04. The ``receipted_message_id`` and
``message_state`` TLVs are used when present, else the ``id:… stat:… err:…`` text. ENROUTE and
ACCEPTD are not final (acknowledged, nothing stored); DELIVRD is delivered; the other final
states fail the segment with a code chosen from the ``err`` value (GSM MAP errors, as most SMSCs
report them) or, without a known one, from the state.
"""

import contextlib
import re
from dataclasses import dataclass
from typing import Literal

from workers.carriers.smpp.pdu import (
    ESM_RECEIPT,
    ESM_TYPE_MASK,
    ShortMessage,
    Status,
    Tag,
    status_name,
)

BACK_PRESSURE = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
INVALID_TO, INVALID_FROM = 21211, 21212  # Twilio's codes for a bad To / From
UNKNOWN_ERROR = 30008
ADDRESS_ERRORS: dict[int, tuple[int, str]] = {
    Status.ESME_RINVDSTADR: (INVALID_TO, "the SMSC refused the destination address"),
    Status.ESME_RINVDSTTON: (INVALID_TO, "the SMSC refused the destination type of number"),
    Status.ESME_RINVDSTNPI: (INVALID_TO, "the SMSC refused the destination numbering plan"),
    Status.ESME_RINVSRCADR: (INVALID_FROM, "the SMSC refused the source address"),
    Status.ESME_RINVSRCTON: (INVALID_FROM, "the SMSC refused the source type of number"),
    Status.ESME_RINVSRCNPI: (INVALID_FROM, "the SMSC refused the source numbering plan"),
}

# message_state TLV values (SMPP 3.4 section 5.2.28) by the receipt text's stat: names.
STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
NOT_FINAL = frozenset({"ENROUTE", "ACCEPTD"})
STATE_CODES = {
    "EXPIRED": 30003,  # the handset stayed unreachable for the whole validity period
    "REJECTD": 30007,  # the network refused it: filtered
    "UNDELIV": UNKNOWN_ERROR,
    "DELETED": UNKNOWN_ERROR,
    "UNKNOWN": UNKNOWN_ERROR,
}
NETWORK_ERROR_CODES = {  # GSM MAP errors in err: (or network_error_code) -> Twilio's codes
    1: 30005,  # unknown subscriber
    5: 30005,  # unidentified subscriber
    11: 30006,  # teleservice not provisioned: the number cannot take SMS (a landline)
    27: 30003,  # absent subscriber
    31: 30003,  # subscriber busy for MT-SMS
}

HexIds = Literal["none", "submit", "receipt"]


def rejection(status: int) -> tuple[int, str]:
    """The error code and message of a refused ``submit_sm`` (not for back-pressure)."""
    code, reason = ADDRESS_ERRORS.get(status, (UNKNOWN_ERROR, "refused by the SMSC"))
    return code, f"{status_name(status)}: {reason}"


def normalise_id(raw: str, *, hexadecimal: bool = False) -> str:
    """One spelling of a message id on both sides: case and leading zeros do not matter, and a
    side that writes ids in hexadecimal is read as the decimal the other side writes."""
    value = raw.strip().strip("\0").strip().lower()
    if hexadecimal:
        with contextlib.suppress(ValueError):  # not hexadecimal (a UUID, say): kept as written
            value = str(int(value, 16))
    if value and all(char in "0123456789abcdef" for char in value):  # a number: 007 is 7
        return value.lstrip("0") or "0"
    return value


@dataclass(frozen=True)
class Receipt:
    message_id: str  # as the SMSC wrote it (normalise before matching)
    state: str  # DELIVRD, UNDELIV, … (STATES' values), or what the text said
    error: int | None  # the network error (err:), when given
    done_date: str | None  # YYMMDDhhmm

    @property
    def final(self) -> bool:
        return self.state not in NOT_FINAL

    @property
    def delivered(self) -> bool:
        return self.state == "DELIVRD"

    @property
    def error_code(self) -> int | None:
        """Twilio's code for a receipt that is not a delivery; None for a delivery."""
        if self.delivered:
            return None
        if self.error in NETWORK_ERROR_CODES:
            return NETWORK_ERROR_CODES[self.error]
        return STATE_CODES.get(self.state, UNKNOWN_ERROR)


_FIELD = re.compile(r"(id|stat|err|done date):(\S+)", re.IGNORECASE)


def is_receipt(message: ShortMessage) -> bool:
    return message.esm_class & ESM_TYPE_MASK == ESM_RECEIPT


def is_mo(message: ShortMessage) -> bool:
    """A message a handset sent: ``esm_class`` message type 0 (default)."""
    return message.esm_class & ESM_TYPE_MASK == 0


def read_receipt(message: ShortMessage) -> Receipt | None:
    """The receipt a ``deliver_sm`` carries; None when it names no message id."""
    text = message.text_octets.decode("latin-1")
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall(text):  # the first of each: a text: field comes last
        fields.setdefault(name.lower(), value)
    message_id = message.tlvs.get(Tag.RECEIPTED_MESSAGE_ID, b"").rstrip(b"\0").decode("latin-1")
    message_id = message_id or fields.get("id", "")
    if not message_id:
        return None
    state_tlv = message.tlvs.get(Tag.MESSAGE_STATE)
    if state_tlv:
        state = STATES.get(state_tlv[0], "UNKNOWN")
    else:
        state = fields.get("stat", "UNKNOWN").upper()
    network_error = message.tlvs.get(Tag.NETWORK_ERROR_CODE)
    error: int | None = None
    if network_error is not None and len(network_error) == 3:
        error = int.from_bytes(network_error[1:], "big") or None
    elif fields.get("err", "").isdigit():
        error = int(fields["err"]) or None
    done = fields.get("done date")
    return Receipt(message_id, state, error, done[:10] if done and done[:10].isdigit() else None)
