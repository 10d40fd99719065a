"""Resource identifiers: a two-letter prefix and 32 lowercase hex digits, as Twilio's."""

import re
import secrets

SID_PATTERN = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def is_sid(value: str, prefix: str) -> bool:
    return value.startswith(prefix) and SID_PATTERN.match(value) is not None
