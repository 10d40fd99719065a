"""Mobile-originated messages: a ``deliver_sm`` whose ``esm_class`` message type is 0 (a
receipt's is 0x04; the other types, SME and intermediate acknowledgements, are neither).

Its text is ``short_message`` or the ``message_payload`` TLV, in the alphabet ``data_coding``
names: 0 the SMSC default (GSM 03.38, one septet per octet), 1 ASCII, 3 Latin-1, 8 UCS-2. A part
of a concatenated message names its group in a UDH (8-bit or 16-bit reference) or in the SAR
TLVs; a message of one part has neither.
"""

from workers.carriers.smpp import gsm7
from workers.carriers.smpp.pdu import ShortMessage
from workers.stages.inbound import MoPart

SAR_MSG_REF_NUM = 0x020C
SAR_TOTAL_SEGMENTS = 0x020E
SAR_SEGMENT_SEQNUM = 0x020F
CODINGS = {0x00: "gsm", 0x01: "ascii", 0x03: "latin-1", 0x08: "utf-16-be"}


class UnreadableMo(ValueError):
    """An MO whose alphabet or concatenation this platform cannot read."""


def e164(address: str) -> str:
    """An SMPP address as E.164: the SMSC sends international numbers without their ``+``."""
    digits = address.strip()
    return digits if digits.startswith("+") or not digits.isdigit() else f"+{digits}"


def read_mo(message: ShortMessage) -> MoPart:
    coding = CODINGS.get(message.data_coding & 0xFF)
    if coding is None:
        raise UnreadableMo(f"data_coding {message.data_coding:#04x} is not one read here")
    octets = message.text_octets
    # What does not decode reads as U+FFFD rather than refusing the message: an SMSC may split
    # a UCS-2 surrogate pair (an emoji) between two parts, each decoded on its own.
    text = gsm7.decode(octets) if coding == "gsm" else octets.decode(coding, errors="replace")
    reference, total, number = _group(message)
    if not 1 <= number <= total:
        raise UnreadableMo(f"part {number} of {total}")
    return MoPart(e164(message.source_addr), e164(message.destination_addr), text,
                  reference, total, number)  # fmt: skip


def _group(message: ShortMessage) -> tuple[int, int, int]:
    udh = message.concatenation
    if udh is not None:
        return udh
    tlvs = message.tlvs
    if SAR_MSG_REF_NUM in tlvs and SAR_TOTAL_SEGMENTS in tlvs and SAR_SEGMENT_SEQNUM in tlvs:
        return (int.from_bytes(tlvs[SAR_MSG_REF_NUM], "big"), tlvs[SAR_TOTAL_SEGMENTS][0],
                tlvs[SAR_SEGMENT_SEQNUM][0])  # fmt: skip
    return 0, 1, 1
