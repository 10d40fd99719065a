"""Phone numbers: parsed with libphonenumber and kept in E.164."""

from functools import lru_cache

import phonenumbers

NUMBERS_CACHED = 65_536  # parsed numbers kept: a sender recurs on every create (~150 µs each)


@lru_cache(maxsize=NUMBERS_CACHED)
def to_e164(raw: str) -> str | None:
    """The number in E.164 when ``raw`` is a valid international number, else None.

    A leading space followed by digits is read as '+': it is what an unencoded '+' becomes
    in a form body or query string (``curl -d To=+4915…``).
    """
    if raw[:1] == " " and raw[1:2].isdigit():
        raw = "+" + raw[1:]
    raw = raw.strip()
    if not raw.startswith("+") or len(raw) > 20:
        return None
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def country_of(e164: str) -> str | None:
    """The ISO 3166 country of an E.164 number (``DE``), as Twilio shows it; None if unknown."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None
