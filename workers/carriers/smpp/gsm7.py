"""The GSM 03.38 default alphabet as SMPP carries it: one octet per septet, not packed.

With ``data_coding`` 0 an SMSC expects the default alphabet one character per octet (it packs
septets itself for the air interface); an extension-table character is the escape octet 0x1B
followed by its code. Segmentation (``workers.segmentation``) has already decided that a GSM-7
message holds only characters of these two tables.
"""

# Code points 0x00-0x7F of the basic table; 0x1B is the escape to the extension table.
BASIC = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./"
    "0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmno"
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "\u20ac": 0x65,
}
ESCAPE = 0x1B

_ENCODE = {char: bytes([code]) for code, char in enumerate(BASIC) if code != ESCAPE}
_ENCODE.update({char: bytes([ESCAPE, code]) for char, code in EXTENSION.items()})
_DECODE_EXTENSION = {code: char for char, code in EXTENSION.items()}


def encode(text: str) -> bytes:
    """Octets of ``text``; ValueError names the first character outside the alphabet."""
    try:
        return b"".join(_ENCODE[char] for char in text)
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not in the GSM 03.38 alphabet") from None


def decode(octets: bytes) -> str:
    """Text of unpacked default-alphabet octets; an unknown escape reads as a space."""
    chars: list[str] = []
    escaped = False
    for octet in octets:
        if escaped:
            chars.append(_DECODE_EXTENSION.get(octet, " "))
            escaped = False
        elif octet == ESCAPE:
            escaped = True
        else:
            chars.append(BASIC[octet & 0x7F])
    return "".join(chars)
