"""Phone numbers: parsed with libphonenumber and kept in E.164."""

import phonenumbers


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
