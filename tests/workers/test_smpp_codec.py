"""The SMPP codec, receipts and ids, one function at a time (no sockets here)."""

from datetime import UTC, datetime, timedelta

import pytest

from schemas.settings import Settings
from workers.carriers.base import Submission
from workers.carriers.smpp import gsm7
from workers.carriers.smpp.outcomes import normalise_id, read_receipt, rejection
from workers.carriers.smpp.pdu import (
    Command,
    Pdu,
    PduError,
    ShortMessage,
    Status,
    Tag,
    decode,
    read_message_id,
    status_name,
)
from workers.carriers.smpp.submit_sm import address, relative_validity, short_message
from workers.segmentation import GSM7_BASIC_CHARS, GSM7_EXTENSION_CHARS


def test_gsm7_covers_exactly_the_alphabet_segmentation_counts() -> None:
    # given every character segmentation sends as GSM-7
    text = "".join(sorted(GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS))
    # when
    octets = gsm7.encode(text)
    # then: one octet per basic character, two per extension character, and back again
    assert len(octets) == len(GSM7_BASIC_CHARS) + 2 * len(GSM7_EXTENSION_CHARS)
    assert gsm7.decode(octets) == text
    assert gsm7.encode("@€") == b"\x00\x1b\x65"
    with pytest.raises(ValueError, match="GSM 03.38"):
        gsm7.encode("ç")


def test_a_pdu_survives_encoding_and_decoding() -> None:
    # given
    body = ShortMessage(source_addr="4915112345678", destination_addr="15551234567",
                        short_message=b"hi", source_addr_ton=1, source_addr_npi=1,
                        dest_addr_ton=1, dest_addr_npi=1, registered_delivery=1,
                        validity_period="000000013000000R",
                        tlvs={Tag.MESSAGE_STATE: b"\x02"})  # fmt: skip
    pdu = Pdu(Command.SUBMIT_SM, 7, 0, body.encode())
    # when
    back = decode(pdu.encode())
    # then
    assert back == pdu
    assert ShortMessage.decode(back.body) == body
    assert back.name == "submit_sm"


def test_malformed_bodies_raise_pdu_errors_with_the_status_to_answer() -> None:
    with pytest.raises(PduError) as caught:
        ShortMessage.decode(b"\x00\x01\x01no terminator")
    assert caught.value.status == Status.ESME_RINVMSGLEN
    with pytest.raises(PduError):
        decode(b"\x00\x00\x00\x05" + b"\x00" * 12)  # a length below the header's
    assert read_message_id(b"") == ""
    assert status_name(0x58) == "ESME_RTHROTTLED"
    assert status_name(0x401) == "0x00000401"


def test_a_multipart_segment_carries_the_udh_of_its_message() -> None:
    # given part 2 of 3 of a UCS-2 message with reference 200, from an alphanumeric sender
    submission = Submission("SMx-2", "+15551234567", "MyShop", "жук", 2, 3, 200,
                            encoding="UCS-2")  # fmt: skip
    # when
    message = short_message(submission, datetime.now(UTC))
    # then
    assert message.esm_class == 0x40
    assert message.short_message[:6] == bytes([5, 0, 3, 200, 3, 2])
    assert message.text_octets.decode("utf-16-be") == "жук"
    assert message.concatenation == (200, 3, 2)
    assert (message.data_coding, message.source_addr_ton, message.source_addr_npi) == (8, 5, 0)
    assert (message.dest_addr_ton, message.dest_addr_npi, message.destination_addr) == (
        1, 1, "15551234567")  # fmt: skip


def test_addresses_and_the_relative_validity_period() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert address("+4915112345678") == (1, 1, "4915112345678")
    assert address("12345") == (0, 1, "12345")
    assert address("MyShop") == (5, 0, "MyShop")
    assert relative_validity(now + timedelta(hours=10), now) == "000000100000000R"
    assert relative_validity(now + timedelta(days=2, minutes=1, seconds=5), now) == (
        "000002000105000R")  # fmt: skip
    assert relative_validity(now - timedelta(seconds=3), now) == "000000000001000R"
    assert relative_validity(None, now) == ""


def test_mms_cannot_go_over_smpp() -> None:
    with pytest.raises(ValueError, match="MMS"):
        short_message(Submission("MMx-1", "+15551234567", "+15557654321", "look", 1, 1, 0,
                                 media=("https://example.org/a.png",)), datetime.now(UTC))  # fmt: skip


def receipt_message(text: str, **tlvs: bytes) -> ShortMessage:
    return ShortMessage(source_addr="1555", destination_addr="1666", esm_class=0x04,
                        short_message=text.encode(),
                        tlvs={Tag[name.upper()]: value for name, value in tlvs.items()})  # fmt: skip


@pytest.mark.parametrize(
    ("text", "tlvs", "expected"),
    [
        # Jasmin's short form: no sub:, dlvrd:, text:
        ("id:0a1B submit date:2612011200 done date:2612011201 stat:DELIVRD err:000", {},
         ("0a1B", "DELIVRD", None, "2612011201", True, None)),
        # the spec's long form, an absent subscriber
        ("id:77 sub:001 dlvrd:000 submit date:2612011200 done date:2612011202 stat:UNDELIV "
         "err:027 text:hello id:99", {}, ("77", "UNDELIV", 27, "2612011202", True, 30003)),
        # TLVs win over the text
        ("id:1 stat:DELIVRD err:000", {"receipted_message_id": b"abc\0", "message_state": b"\x08"},
         ("abc", "REJECTD", None, None, True, 30007)),
        ("id:5 stat:EXPIRED err:000", {}, ("5", "EXPIRED", None, None, True, 30003)),
        ("id:5 stat:UNDELIV err:001", {}, ("5", "UNDELIV", 1, None, True, 30005)),
        ("id:5 stat:UNDELIV err:011", {}, ("5", "UNDELIV", 11, None, True, 30006)),
        ("id:5 stat:DELETED err:000", {}, ("5", "DELETED", None, None, True, 30008)),
        ("id:5 stat:ENROUTE err:000", {}, ("5", "ENROUTE", None, None, False, 30008)),
        ("id:5 stat:ACCEPTD err:000", {}, ("5", "ACCEPTD", None, None, False, 30008)),
        ("", {"receipted_message_id": b"9\0", "message_state": b"\x05",
              "network_error_code": b"\x03\x00\x1b"}, ("9", "UNDELIV", 27, None, True, 30003)),
    ],
)  # fmt: skip
def test_receipts_are_read_from_tlvs_or_text(text: str, tlvs: dict[str, bytes],
                                             expected: tuple[object, ...]) -> None:  # fmt: skip
    receipt = read_receipt(receipt_message(text, **tlvs))
    assert receipt is not None
    assert (receipt.message_id, receipt.state, receipt.error, receipt.done_date, receipt.final,
            receipt.error_code) == expected  # fmt: skip


def test_a_receipt_without_an_id_is_none() -> None:
    assert read_receipt(receipt_message("stat:DELIVRD")) is None


@pytest.mark.parametrize(
    ("raw", "hexadecimal", "expected"),
    [
        ("00AB12", False, "ab12"),
        (" 0042\0", False, "42"),
        ("000", False, "0"),
        ("0a", True, "10"),
        ("2A", True, "42"),
        ("0f3c1b2e-4d5a-4b6c-8d7e-9f0a1b2c3d4e", True, "0f3c1b2e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"),
        ("0F3C1B2E-4D5A-4B6C-8D7E-9F0A1B2C3D4E", False, "0f3c1b2e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"),
    ],
)
def test_ids_are_normalised_the_same_way_on_both_sides(raw: str, hexadecimal: bool,
                                                       expected: str) -> None:  # fmt: skip
    assert normalise_id(raw, hexadecimal=hexadecimal) == expected


def test_refusals_map_to_twilio_codes() -> None:
    assert rejection(Status.ESME_RINVDSTADR)[0] == 21211
    assert rejection(Status.ESME_RINVSRCTON)[0] == 21212
    assert rejection(Status.ESME_RSUBMITFAIL) == (30008, "ESME_RSUBMITFAIL: refused by the SMSC")
    assert rejection(0x401) == (30008, "0x00000401: refused by the SMSC")


def test_an_empty_tps_means_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYCPAAS_SMPP_TPS", "")
    assert Settings().smpp_tps is None
    monkeypatch.setenv("MYCPAAS_SMPP_TPS", "12.5")
    assert Settings().smpp_tps == 12.5
