"""Tests for workers.segmentation: encoding choice, segment counts and split points."""

import random

import pytest
import regex

from workers.segmentation import (
    GSM7_BASIC_CHARS,
    GSM7_CHARS,
    GSM7_EXTENSION_CHARS,
    GSM_MULTI_SEPTETS,
    GSM_SINGLE_SEPTETS,
    MAX_BODY_CHARS,
    SMART_ENCODING_MAP,
    UCS2_MULTI_UNITS,
    UCS2_SINGLE_UNITS,
    Encoding,
    Segmented,
    is_gsm7,
    segment,
    smart_encode,
)

GSM = Encoding.GSM7
UCS = Encoding.UCS2

GRINNING = "\U0001f600"  # 😀, one surrogate pair (2 UTF-16 units)
FLAG_IT = "\U0001f1ee\U0001f1f9"  # 🇮🇹, two regional indicators (4 units, 1 grapheme)
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈, ZWJ sequence (6 units)
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👨‍👩‍👧‍👦 (11 units)
E_ACUTE = "e\u0301"  # e + COMBINING ACUTE ACCENT: one grapheme, two units
TRIPLE_ACCENT = "\u00e9\u0301\u0301\u0301"  # é with three more acutes: 1 grapheme, 4 units
ZALGO = "e" + "\u0301" * 100  # one grapheme of 101 units: wider than any segment

CASES: list[tuple[str, str, Encoding, int]] = [
    # --- empty and plain GSM-7 -----------------------------------------------------
    ("empty", "", GSM, 1),
    ("a x1", "a", GSM, 1),
    ("a x160", "a" * 160, GSM, 1),
    ("a x161", "a" * 161, GSM, 2),
    ("a x306", "a" * 306, GSM, 2),
    ("a x307", "a" * 307, GSM, 3),
    ("a x1600 (MAX_BODY_CHARS)", "a" * 1600, GSM, 11),
    ("GSM basic table incl. Greek", "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", GSM, 1),
    # --- extension table (two septets each) ---------------------------------------
    ("euro x80 = 160 septets", "€" * 80, GSM, 1),
    ("euro x81 = 162 septets", "€" * 81, GSM, 2),
    ("form feed x80", "\f" * 80, GSM, 1),
    ("form feed x81", "\f" * 81, GSM, 2),
    ("ext char as 160th septet pair", "a" * 158 + "€", GSM, 1),
    ("ext char over 160 septets", "a" * 159 + "€", GSM, 2),
    ("leading ext char, 160 septets", "]" + "a" * 158, GSM, 1),
    ("leading ext char, 161 septets", "]" + "a" * 159, GSM, 2),
    ("ext pair ends segment 1 exactly", "a" * 151 + "€" + "a" * 153, GSM, 2),
    ("ext pair straddles 153 boundary", "a" * 152 + "€" + "a" * 152, GSM, 3),
    ("every ext char", "^{}\\[~]|€\f", GSM, 1),
    # --- characters outside GSM 03.38 --------------------------------------------
    ("lowercase c-cedilla is not GSM", "ç", UCS, 1),
    ("uppercase C-cedilla is GSM", "Ç", GSM, 1),
    ("backtick forces UCS-2", "`", UCS, 1),
    ("c-cedilla x70", "ç" * 70, UCS, 1),
    ("c-cedilla x71", "ç" * 71, UCS, 2),
    ("cyrillic x70", "ж" * 70, UCS, 1),
    ("cyrillic x71", "ж" * 71, UCS, 2),
    ("cyrillic x134", "ж" * 134, UCS, 2),
    ("cyrillic x135", "ж" * 135, UCS, 3),
    ("cyrillic x1600 (MAX_BODY_CHARS)", "ж" * 1600, UCS, 24),
    ("GSM ext chars cost 1 unit in UCS-2, 70 units", GRINNING + "]" * 68, UCS, 1),
    ("GSM ext chars cost 1 unit in UCS-2, 71 units", GRINNING + "]" * 69, UCS, 2),
    # --- surrogate pairs ---------------------------------------------------------
    ("emoji x35 = 70 units", GRINNING * 35, UCS, 1),
    ("emoji x36 = 72 units", GRINNING * 36, UCS, 2),
    ("emoji ends segment 1 exactly", "a" * 65 + GRINNING + "a" * 67, UCS, 2),
    ("emoji straddles 67 boundary", "a" * 66 + GRINNING + "a" * 66, UCS, 3),
    # --- grapheme clusters ----------------------------------------------------------
    ("combining mark alone", E_ACUTE, UCS, 1),
    ("combining marks x35 = 70 units", E_ACUTE * 35, UCS, 1),
    ("combining marks x36 = 72 units", E_ACUTE * 36, UCS, 2),
    ("combining mark straddles 67 boundary", "a" * 66 + E_ACUTE + "a" * 66, UCS, 3),
    ("triple accent + 66 = 70 units", TRIPLE_ACCENT + "a" * 66, UCS, 1),
    ("triple accent + 67 = 71 units", TRIPLE_ACCENT + "a" * 67, UCS, 2),
    ("flag + 66 = 70 units", FLAG_IT + "a" * 66, UCS, 1),
    ("flag + 67 = 71 units", FLAG_IT + "a" * 67, UCS, 2),
    ("flag straddles 67 boundary", "a" * 65 + FLAG_IT + "a" * 64, UCS, 3),
    ("ZWJ rainbow flag + 64 = 70 units", RAINBOW_FLAG + "a" * 64, UCS, 1),
    ("ZWJ rainbow flag + 65 = 71 units", RAINBOW_FLAG + "a" * 65, UCS, 2),
    ("ZWJ family straddles 67 boundary", "a" * 60 + FAMILY + "a" * 60, UCS, 3),
    ("grapheme wider than a segment gets its own", "a" + ZALGO + "a", UCS, 3),
    ("grapheme wider than a segment, alone", ZALGO, UCS, 1),
    # --- line breaks --------------------------------------------------------------
    ("CRLF is GSM", "line 1\r\nline 2\n", GSM, 1),
    ("CRLF x80 = 160 septets", "\r\n" * 80, GSM, 1),
    ("CRLF x81 = 162 septets", "\r\n" * 81, GSM, 2),
]


def _cost(char_or_grapheme: str, encoding: Encoding) -> int:
    if encoding is GSM:
        return sum(2 if char in GSM7_EXTENSION_CHARS else 1 for char in char_or_grapheme)
    return len(char_or_grapheme.encode("utf-16-le")) // 2


@pytest.mark.parametrize(
    ("body", "encoding", "num_segments"),
    [pytest.param(body, enc, n, id=name) for name, body, enc, n in CASES],
)
def test_segment_counts(body: str, encoding: Encoding, num_segments: int) -> None:
    # given a body from the edge-case table

    # when it is segmented
    result = segment(body)

    # then encoding and count match, and the parts rebuild the body
    assert result.encoding is encoding
    assert result.num_segments == num_segments
    assert len(result.parts) == num_segments
    assert "".join(result.parts) == body
    assert is_gsm7(body) is (encoding is GSM)


def test_empty_body_is_one_empty_part() -> None:
    # given an empty body

    # when it is segmented
    result = segment("")

    # then it is a single, empty GSM-7 segment
    assert result == Segmented(Encoding.GSM7, ("",))
    assert result.num_segments == 1


def test_extension_pair_is_never_split_at_153() -> None:
    # given a euro sign whose escape septet would be the 153rd
    body = "a" * 152 + "€" + "a" * 152

    # when it is segmented
    parts = segment(body).parts

    # then the euro sign opens the second segment whole
    assert parts == ("a" * 152, "€" + "a" * 151, "a")


def test_extension_pair_fills_segment_exactly() -> None:
    # given a euro sign taking septets 152 and 153
    body = "a" * 151 + "€" + "a" * 10

    # when it is segmented
    parts = segment(body).parts

    # then it ends the first segment
    assert parts == ("a" * 151 + "€", "a" * 10)


def test_surrogate_pair_is_never_split_at_67() -> None:
    # given an emoji whose high surrogate would be the 67th unit
    body = "a" * 66 + GRINNING + "a" * 66

    # when it is segmented
    parts = segment(body).parts

    # then the emoji opens the second segment whole
    assert parts == ("a" * 66, GRINNING + "a" * 65, "a")


@pytest.mark.parametrize(
    "cluster",
    [E_ACUTE, TRIPLE_ACCENT, FLAG_IT, RAINBOW_FLAG, FAMILY],
    ids=["combining", "triple-accent", "flag", "zwj-rainbow", "zwj-family"],
)
def test_grapheme_cluster_is_never_split(cluster: str) -> None:
    # given a cluster that would straddle the first segment boundary
    body = "a" * 66 + cluster + "b" * 80

    # when it is segmented
    parts = segment(body).parts

    # then the first segment stops before it and the second starts with all of it
    assert parts[0] == "a" * 66
    assert parts[1].startswith(cluster + "b")


def test_grapheme_wider_than_segment_gets_a_part_of_its_own() -> None:
    # given a 101-unit grapheme between two letters (the calculator never splits it)
    body = "a" + ZALGO + "b"

    # when it is segmented
    parts = segment(body).parts

    # then it sits alone in an over-budget part and nothing is merged with it
    assert parts == ("a", ZALGO, "b")


def test_crlf_counts_as_two_characters_in_ucs2() -> None:
    # given a CR LF pair astride the 67-unit boundary of a UCS-2 body
    body = "ж" * 66 + "\r\n" + "ж" * 10

    # when it is segmented
    parts = segment(body).parts

    # then, as in the calculator, CR ends one segment and LF starts the next
    assert parts == ("ж" * 66 + "\r", "\n" + "ж" * 10)


def test_gsm7_tables() -> None:
    # given the GSM 03.38 tables

    # when they are measured
    basic, extension = len(GSM7_BASIC_CHARS), len(GSM7_EXTENSION_CHARS)

    # then there are 127 basic characters (128 minus ESC) and 10 extension ones
    assert (basic, extension) == (127, 10)
    assert set("\f^{}\\[~]|€") == GSM7_EXTENSION_CHARS
    assert not GSM7_BASIC_CHARS & GSM7_EXTENSION_CHARS
    assert "Ç" in GSM7_CHARS
    assert "ç" not in GSM7_CHARS
    assert "`" not in GSM7_CHARS


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("‘single’ ‚low‛", "'single' 'low'", id="single-quotes"),
        pytest.param("“double” „low‟ «guillemets»", '"double" "low" "guillemets"', id="double"),
        pytest.param("a–b—c‒d―e", "a-b-c-d-e", id="dashes"),
        pytest.param("wait…", "wait...", id="ellipsis"),
        pytest.param("a\u00a0b\u2009c\u202fd\u3000e", "a b c d e", id="unicode-spaces"),
        pytest.param("`tick`", "'tick'", id="backtick"),
        pytest.param("‹a› ½", "<a> 1/2", id="angle-quotes-and-fraction"),
        pytest.param("ＡＢＣ１２３！", "ABC123!", id="fullwidth"),
        pytest.param("zero\u200bwidth\ufeff", "zerowidth", id="invisible"),
        pytest.param("plain ASCII stays", "plain ASCII stays", id="unchanged"),
        pytest.param("ç and 😀 stay", "ç and 😀 stay", id="unmapped"),
    ],
)
def test_smart_encode(body: str, expected: str) -> None:
    # given a body with look-alike characters

    # when it is smart-encoded
    encoded = smart_encode(body)

    # then the look-alikes are replaced by GSM-7 characters
    assert encoded == expected


def test_smart_encoding_turns_ucs2_into_gsm7() -> None:
    # given 100 characters that are UCS-2 only because of curly quotes and a dash
    body = "“Hi” — it’s " + "a" * 88

    # when it is segmented with and without smart encoding
    plain = segment(body)
    smart = segment(body, smart_encoding=True)

    # then smart encoding saves a segment and its parts rebuild the encoded body
    assert (plain.encoding, plain.num_segments) == (UCS, 2)
    assert (smart.encoding, smart.num_segments) == (GSM, 1)
    assert "".join(smart.parts) == smart_encode(body) == '"Hi" - it\'s ' + "a" * 88


def test_smart_encoding_applies_even_when_body_stays_ucs2() -> None:
    # given an emoji (not replaceable) next to an ellipsis (replaced by three dots)
    body = GRINNING + "…" * 34

    # when it is segmented with smart encoding
    result = segment(body, smart_encoding=True)

    # then the ellipses are still expanded, as in the calculator: 2 + 102 units
    assert result.encoding is UCS
    assert result.num_segments == 2
    assert "".join(result.parts) == GRINNING + "..." * 34


def test_smart_encoding_map_targets_are_gsm7() -> None:
    # given the smart-encoding map

    # when its keys and replacements are checked against GSM 03.38
    keys_in_gsm = [key for key in SMART_ENCODING_MAP if key in GSM7_CHARS]
    bad_targets = [key for key, value in SMART_ENCODING_MAP.items() if not is_gsm7(value)]

    # then only non-GSM characters are replaced, and only by GSM-7 text
    assert keys_in_gsm == []
    assert bad_targets == []


def test_smart_encode_is_idempotent() -> None:
    # given every mapped character in one body
    body = "".join(SMART_ENCODING_MAP)

    # when it is smart-encoded twice
    once = smart_encode(body)

    # then the second pass changes nothing and the result is GSM-7
    assert smart_encode(once) == once
    assert is_gsm7(once)


def test_max_body_chars() -> None:
    # given the body limit

    # when a body of exactly that many code points is segmented
    result = segment("x" * MAX_BODY_CHARS)

    # then it is Twilio's 1,600 and splits into ceil(1600 / 153) GSM-7 segments
    assert MAX_BODY_CHARS == 1600
    assert result.num_segments == 11


# The unit the segmenter never splits: a grapheme, with CR LF counted as two.
_FIRST_CHARACTER = regex.compile(r"\r|\X")

_ALPHABET = [
    "a",
    "Z",
    " ",
    "\n",
    "\r\n",
    "€",
    "^",
    "\f",
    "Ç",
    "ç",
    "ж",
    "`",
    GRINNING,
    E_ACUTE,
    FLAG_IT,
    RAINBOW_FLAG,
    FAMILY,
    "“",
    "…",
]


@pytest.mark.parametrize("seed", range(40))
def test_parts_fit_their_budget(seed: int) -> None:
    # given a random body mixing GSM, extension, UCS-2 and multi-unit characters
    rng = random.Random(seed)
    pool = rng.sample(_ALPHABET, rng.randint(1, 5))
    body = "".join(rng.choice(pool) for _ in range(rng.randint(0, 700)))
    smart = bool(seed % 2)

    # when it is segmented
    result = segment(body, smart_encoding=smart)

    # then the parts rebuild the body, each fits its budget and none could hold more
    expected_body = smart_encode(body) if smart else body
    encoding = result.encoding
    assert "".join(result.parts) == expected_body
    assert encoding is (GSM if is_gsm7(expected_body) else UCS)
    costs = [_cost(part, encoding) for part in result.parts]
    if len(result.parts) == 1:
        single = GSM_SINGLE_SEPTETS if encoding is GSM else UCS2_SINGLE_UNITS
        assert costs[0] <= single
        return
    multi = GSM_MULTI_SEPTETS if encoding is GSM else UCS2_MULTI_UNITS
    assert sum(costs) > (GSM_SINGLE_SEPTETS if encoding is GSM else UCS2_SINGLE_UNITS)
    for part, cost, following in zip(result.parts, costs, result.parts[1:], strict=False):
        assert part
        assert cost <= multi
        # greedy: the first character (grapheme) of the next part would not have fitted
        first = _FIRST_CHARACTER.match(following)
        assert first is not None
        assert cost + _cost(first.group(), encoding) > multi
