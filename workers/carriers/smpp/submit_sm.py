"""How a segment becomes a ``submit_sm``.

GSM-7 as the SMSC default alphabet (``data_coding`` 0), or UCS-2 big-endian (8); parts of a
multipart message with ``esm_class`` 0x40 and the 6-octet UDH of the message's reference; source
TON/NPI 1/1 for E.164, 0/1 for other digits, 5/0 for alphanumeric senders; destination 1/1;
``registered_delivery`` 1; ``validity_period`` relative, from what is left of the message's
``ValidityPeriod``.
"""

import re
from datetime import datetime

from workers.carriers.base import Submission
from workers.carriers.smpp import gsm7
from workers.carriers.smpp.pdu import (
    DATA_CODING_DEFAULT,
    DATA_CODING_UCS2,
    ESM_UDHI,
    ShortMessage,
    concatenation_udh,
)

MAX_VALIDITY_S = 99 * 86400  # the relative format holds 99 days at most
E164 = re.compile(r"\+[1-9]\d{1,14}")


def relative_validity(expires_at: datetime | None, now: datetime) -> str:
    """``YYMMDDhhmmss000R``: what is left until ``expires_at``; empty for the SMSC default."""
    if expires_at is None:
        return ""
    seconds = max(1, min(MAX_VALIDITY_S, int((expires_at - now).total_seconds())))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"


def address(number: str) -> tuple[int, int, str]:
    """``(ton, npi, addr)`` of a sender or destination as SMSCs expect it."""
    if E164.fullmatch(number):
        return 1, 1, number[1:]  # international, ISDN (E.164)
    if number.isdigit():
        return 0, 1, number  # unknown type (a short code or a national number), ISDN
    return 5, 0, number  # alphanumeric


def short_message(submission: Submission, now: datetime) -> ShortMessage:
    """The ``submit_sm`` body of one segment; ValueError when SMPP cannot carry it."""
    if submission.media:
        raise ValueError("MMS cannot be sent over SMPP")
    if submission.encoding == "UCS-2":
        data_coding, text = DATA_CODING_UCS2, submission.text.encode("utf-16-be")
    else:
        try:
            data_coding, text = DATA_CODING_DEFAULT, gsm7.encode(submission.text)
        except ValueError:  # not a GSM-7 message after all: UCS-2 carries anything
            data_coding, text = DATA_CODING_UCS2, submission.text.encode("utf-16-be")
    esm_class = 0
    if submission.total > 1:
        esm_class = ESM_UDHI
        text = concatenation_udh(submission.udh_ref, submission.total, submission.part) + text
    source_ton, source_npi, source = address(submission.from_)
    _dest_ton, _dest_npi, destination = address(submission.to)
    return ShortMessage(
        source_addr=source,
        destination_addr=destination,
        short_message=text,
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        dest_addr_ton=1,
        dest_addr_npi=1,
        esm_class=esm_class,
        registered_delivery=1,
        data_coding=data_coding,
        validity_period=relative_validity(submission.expires_at, now),
    )
