"""SMS segmentation: how a message body is split into billable segments.

The rules follow Twilio's open-source message-segment-calculator
(TwilioDevEd/message-segment-calculator), which is what Twilio customers use to
predict the segment count they are billed for:

* **Encoding.** A body is sent as GSM-7 when every character is in the GSM 03.38
  basic table or its extension table; otherwise the whole body is sent as UCS-2.
  A basic-table character costs one septet; an extension-table character
  (form feed and ``^{}\\[~]|€``) costs two, the escape septet plus the character.
  In UCS-2 every character costs its UTF-16 code units: one for the Basic
  Multilingual Plane, two (a surrogate pair) for anything above it, e.g. emoji.
  ``ç`` (lowercase) and the backtick are not in GSM 03.38, so either one forces
  UCS-2 (``Ç`` is in the table).
* **One segment or several.** The whole body fits in one segment when its total
  cost is at most 160 septets (GSM-7) or 70 code units (UCS-2). Otherwise every
  segment carries a 6-byte User Data Header for reassembly, which leaves 153
  septets or 67 code units of text per segment.
* **Nothing is split.** Segments are filled greedily with whole user-perceived
  characters (extended grapheme clusters, ``\\X``); when the next one does not fit
  the current segment, a new segment starts. An escape pair, a surrogate pair, a
  base letter with its combining marks, a flag, or a ZWJ emoji sequence therefore
  always stays in one segment. As in the calculator, a CR LF pair counts as two
  separate characters.
* **Graphemes wider than a segment.** A single grapheme costing more than a
  segment's budget (only possible in UCS-2, e.g. a letter followed by dozens of
  combining marks) cannot be kept whole within the budget. The calculator does
  not split it: it gets a segment of its own that is over budget, and the next
  grapheme starts a new segment. We do the same, with two deliberate
  differences: when such a grapheme opens the body the calculator also counts
  an empty first segment, which we do not; and the calculator can carry the
  last grapheme(s) of the first segment together with the next one into the
  second segment without checking that they fit, which we never do (plain
  greedy filling). Both only show with graphemes of roughly 50+ code units.
* **Smart encoding** (optional) first replaces look-alike characters (curly
  quotes, dashes, ellipsis, Unicode spaces, full-width forms, ...) with GSM-7
  ones, the way Twilio's Smart Encoding does, and then counts the result.

Everything here is pure computation over ``str``; intake calls :func:`segment`
for every message, so the common cases avoid per-character Python loops.
"""

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import regex

# --- Limits ------------------------------------------------------------------

# One SMS carries 140 octets of user data; the budgets below are derived from it.
GSM_SINGLE_SEPTETS: Final = 160  # 140 octets * 8 / 7 bits per septet
GSM_MULTI_SEPTETS: Final = 153  # (140 - 6 octets of UDH) * 8 / 7, rounded down
UCS2_SINGLE_UNITS: Final = 70  # 140 octets / 2 octets per UTF-16 code unit
UCS2_MULTI_UNITS: Final = 67  # (140 - 6 octets of UDH) / 2 octets per code unit

# Longest body accepted, in characters, after Twilio's documented 1,600-character
# limit. "Characters" means Python ``len(body)``, i.e. Unicode code points: an
# emoji outside the BMP counts once (not as its two UTF-16 units) and "e" plus a
# combining accent counts twice. Measured on the body as submitted, before smart
# encoding (which can lengthen it, e.g. "…" becomes "...").
MAX_BODY_CHARS: Final = 1600


class Encoding(StrEnum):
    """Character encoding of an SMS body on the wire."""

    GSM7 = "GSM-7"  # GSM 03.38 default alphabet: 7-bit septets, 160 per single SMS
    UCS2 = "UCS-2"  # UTF-16 code units (surrogate pairs allowed): 70 per single SMS


@dataclass(frozen=True, slots=True)
class Segmented:
    """A body split into segments: ``"".join(parts)`` is the (smart-encoded) body."""

    encoding: Encoding
    parts: tuple[str, ...]  # text of each segment, in order; ("",) for an empty body

    @property
    def num_segments(self) -> int:
        """Number of segments billed; an empty body still counts as one."""
        return max(1, len(self.parts))


# --- GSM 03.38 character tables ------------------------------------------------

# Basic table, in code-point order 0x00..0x7F of the GSM alphabet; the escape
# code 0x1B is not a character and is left out, so this holds 127 characters.
_GSM7_BASIC_TABLE: Final = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./"
    "0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmno"
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
# Extension table: each of these costs two septets (escape 0x1B + the character).
_GSM7_EXTENSION_TABLE: Final = "\f^{}\\[~]|\u20ac"

GSM7_BASIC_CHARS: Final = frozenset(_GSM7_BASIC_TABLE)
GSM7_EXTENSION_CHARS: Final = frozenset(_GSM7_EXTENSION_TABLE)
GSM7_CHARS: Final = GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS

# --- Smart encoding ---------------------------------------------------------------

# Replacement -> the characters replaced by it. Built from the calculator's
# SmartEncodingMap (which mirrors Twilio's Smart Encoding list), with these
# deliberate differences:
# * Unicode spaces (and the C1 controls the calculator treats as spaces) become
#   ONE space; the calculator turns most of them into two.
# * U+201A SINGLE LOW-9 QUOTATION MARK is a quote, so it becomes "'" (the
#   calculator makes it ","), and U+2012 FIGURE DASH, missing there, becomes "-".
# * U+2039/U+203A (single angle quotation marks) become "<" and ">" respectively;
#   the calculator has them the wrong way round.
_SMART_ENCODING_GROUPS: Final[tuple[tuple[str, str], ...]] = (
    # double quotes and double-prime look-alikes
    ('"', "\u00ab\u00bb\u201c\u201d\u201e\u201f\u02ba\u02ee\u275d\u275e\u301d\u301e\uff02"),
    # single quotes, primes, accents used as apostrophes, and the backtick
    (
        "'",
        "\u2018\u2019\u201a\u201b\u02b9\u02bb\u02bc\u02bd\u02c8\u02ca\u02cb\u00b4`"
        "\u275b\u275c\u0313\u0314\ufe10\ufe11\uff07",
    ),
    # dashes, hyphens, horizontal bars and the bullet
    ("-", "\u2010\u2012\u2013\u2014\u2015\u2043\u2022\u23bc\u23bd\ufe63\uff0d"),
    ("...", "\u2026"),  # horizontal ellipsis
    # no-break, typographic and ideographic spaces, line/paragraph separators,
    # and C1 controls that render as blanks
    (
        " ",
        "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
        "\u202f\u205f\u3000\u2028\u2029\u0080\u008d\u0090\u009b\u009f",
    ),
    ("       ", "\t"),  # tab: seven spaces, as the calculator does
    # invisible characters and C0 controls outside GSM-7 are dropped
    (
        "",
        "\u200b\u2060\ufeff\u0000\u0003\u0004\u0010\u0011\u0012\u0013\u0014\u0017\u0019",
    ),
    ("/", "\u00f7\u2044\u2215\u29f8\u0337\u0338\uff0f"),
    ("1/4", "\u00bc"),
    ("1/2", "\u00bd"),
    ("3/4", "\u00be"),
    ("\\", "\u29f5\u29f9\u20e5\ufe68\uff3c"),
    ("_", "\u0332\u2017\uff3f"),
    ("|", "\u20d2\u20d3\u2223\u239c\u239f\u23b8\u23b9\u23d0\uff5c"),
    ("@", "\ufe6b\uff20"),
    ("$", "\ufe69\uff04"),
    ("!", "\u01c3\ufe15\ufe57\uff01"),
    ("!!", "\u203c"),
    ("#", "\ufe5f\uff03"),
    ("%", "\ufe6a\uff05"),
    ("&", "\ufe60\uff06"),
    (",", "\u0326\u3001\ufe50\ufe51\uff0c\uff64"),
    ("(", "\u2768\u276a\u27ee\u2985\ufe59\uff08"),
    (")", "\u2769\u276b\u27ef\u2986\ufe5a\uff09"),
    (
        "*",
        "\u204e\u2217\u229b\u2722\u2723\u2724\u2725\u2731\u2732\u2733\u273a\u273b"
        "\u273c\u273d\u2743\u2749\u274a\u274b\u29c6\ufe61\uff0a",
    ),
    ("+", "\u02d6\ufe62\uff0b"),
    (".", "\u3002\ufe52\uff0e\uff61"),
    (":", "\u02d0\u02f8\u2982\ua789\ufe13\uff1a"),
    (";", "\u204f\ufe14\ufe54\uff1b"),
    ("<", "\u2039\ufe64\uff1c"),
    ("=", "\u0347\ua78a\ufe66\uff1d"),
    (">", "\u203a\ufe65\uff1e"),
    ("?", "\ufe16\ufe56\uff1f"),
    ("^", "\u02c6\u0302\u1dcd\uff3e"),
    ("{", "\u2774\ufe5b\uff5b"),
    ("}", "\u2775\ufe5c\uff5d"),
    ("[", "\uff3b"),
    ("]", "\uff3d"),
    ("~", "\u02dc\u02f7\u0303\u0330\u0334\u223c\uff5e"),
    # Latin letter small capitals (no small capital Q or X exists)
    ("A", "\u1d00"),
    ("B", "\u0299"),
    ("C", "\u1d04"),
    ("D", "\u1d05"),
    ("E", "\u1d07"),
    ("F", "\ua730"),
    ("G", "\u0262"),
    ("H", "\u029c"),
    ("I", "\u026a"),
    ("J", "\u1d0a"),
    ("K", "\u1d0b"),
    ("L", "\u029f"),
    ("M", "\u1d0d"),
    ("N", "\u0274"),
    ("O", "\u1d0f"),
    ("P", "\u1d18"),
    ("R", "\u0280"),
    ("S", "\ua731"),
    ("T", "\u1d1b"),
    ("U", "\u1d1c"),
    ("V", "\u1d20"),
    ("W", "\u1d21"),
    ("Y", "\u028f"),
    ("Z", "\u1d22"),
)

# Full-width digits U+FF10..U+FF19 and capital letters U+FF21..U+FF3A map to ASCII.
_FULLWIDTH: Final = {chr(0xFF10 + i): chr(ord("0") + i) for i in range(10)} | {
    chr(0xFF21 + i): chr(ord("A") + i) for i in range(26)
}

SMART_ENCODING_MAP: Final = MappingProxyType(
    {char: replacement for replacement, chars in _SMART_ENCODING_GROUPS for char in chars}
    | _FULLWIDTH
)
# str.translate table (code point -> replacement), built once.
_SMART_ENCODING_TABLE: Final = {ord(char): repl for char, repl in SMART_ENCODING_MAP.items()}

# --- Grapheme splitting --------------------------------------------------------------

# One match per user-perceived character (extended grapheme cluster), except that
# CR LF -- a single cluster in Unicode -- yields CR and LF separately, as in the
# calculator. Only used for multi-segment UCS-2 bodies.
_CHARACTER_RE: Final = regex.compile(r"\r|\X")


def is_gsm7(body: str) -> bool:
    """True when every character of ``body`` is in the GSM 03.38 basic or extension table."""
    return GSM7_CHARS.issuperset(body)


def smart_encode(body: str) -> str:
    """``body`` with look-alike characters replaced by GSM-7 ones (Twilio Smart Encoding).

    Replacements are applied per code point whether or not the result ends up
    entirely GSM-7, as the calculator does.
    """
    return body.translate(_SMART_ENCODING_TABLE)


def segment(body: str, *, smart_encoding: bool = False) -> Segmented:
    """Split ``body`` into SMS segments the way Twilio's segment calculator does."""
    if smart_encoding:
        body = smart_encode(body)
    if GSM7_BASIC_CHARS.issuperset(body):
        # Fast path: one septet per character, nothing to keep together.
        if len(body) <= GSM_SINGLE_SEPTETS:
            return Segmented(Encoding.GSM7, (body,))
        return Segmented(Encoding.GSM7, _fixed_width_parts(body, GSM_MULTI_SEPTETS))
    if GSM7_CHARS.issuperset(body):
        return Segmented(Encoding.GSM7, _gsm7_parts(body))
    return Segmented(Encoding.UCS2, _ucs2_parts(body))


def _fixed_width_parts(body: str, width: int) -> tuple[str, ...]:
    """``body`` cut every ``width`` characters."""
    return tuple(body[start : start + width] for start in range(0, len(body), width))


def _gsm7_parts(body: str) -> tuple[str, ...]:
    """Parts of a GSM-7 body containing at least one two-septet extension character."""
    extension_count = sum(body.count(char) for char in _GSM7_EXTENSION_TABLE)
    if len(body) + extension_count <= GSM_SINGLE_SEPTETS:
        return (body,)
    parts: list[str] = []
    start = 0
    used = 0  # septets in the current part
    for index, char in enumerate(body):
        cost = 2 if char in GSM7_EXTENSION_CHARS else 1
        if used + cost > GSM_MULTI_SEPTETS:
            parts.append(body[start:index])
            start = index
            used = 0
        used += cost
    parts.append(body[start:])
    return tuple(parts)


def _utf16_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (code points above U+FFFF count twice)."""
    return len(text.encode("utf-16-le")) // 2


def _ucs2_parts(body: str) -> tuple[str, ...]:
    """Parts of a body that needs UCS-2."""
    total_units = _utf16_units(body)
    if total_units <= UCS2_SINGLE_UNITS:
        return (body,)
    graphemes: list[str] = _CHARACTER_RE.findall(body)
    if len(graphemes) == total_units:
        # Every grapheme is a single code unit: cut at a fixed width.
        return _fixed_width_parts(body, UCS2_MULTI_UNITS)
    parts: list[str] = []
    start = 0
    position = 0  # index in body just past the graphemes consumed so far
    used = 0  # code units in the current part
    for grapheme in graphemes:
        cost = _utf16_units(grapheme)
        # Start a new part when this grapheme does not fit; a grapheme wider than
        # a whole segment still goes into a part of its own (see module docstring).
        if used + cost > UCS2_MULTI_UNITS and position > start:
            parts.append(body[start:position])
            start = position
            used = 0
        used += cost
        position += len(grapheme)
    parts.append(body[start:])
    return tuple(parts)
