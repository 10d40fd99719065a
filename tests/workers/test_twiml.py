"""Reading a webhook's answer: the replies TwiML asks for, and Twilio's codes for what it cannot
read (12100, 12102, 12200, 12300), never an exception."""

import pytest

from workers.webhooks.twiml import Problem, Reply, read

XML = "text/xml; charset=utf-8"


def codes(content_type: str | None, text: str) -> list[int]:
    return [problem.code for problem in read(content_type, text).problems]


@pytest.mark.parametrize("text", ["", "  \n", "<Response/>", "<Response></Response>"])
def test_an_empty_answer_asks_for_nothing(text: str) -> None:
    answer = read(XML, text)
    assert (answer.replies, answer.problems) == ([], [])


def test_a_message_verb_is_a_reply_to_the_sender_from_the_number() -> None:
    answer = read(XML, '<?xml version="1.0"?><Response><Message>Thanks!</Message></Response>')
    assert answer.replies == [Reply("Thanks!")]
    assert answer.problems == []


def test_body_media_and_attributes() -> None:
    text = (
        '<Response><Message to="+4915112345678" from="+15005550006" action="https://x.test/cb">'
        "<Body>Your order</Body><Media>https://m.test/a.png</Media>"
        "<Media> https://m.test/b.png </Media></Message>"
        "<Message statusCallback='https://x.test/old'>second</Message></Response>"
    )
    answer = read("application/xml", text)
    assert answer.replies == [
        Reply("Your order", ("https://m.test/a.png", "https://m.test/b.png"), "+4915112345678",
              "+15005550006", "https://x.test/cb"),
        Reply("second", status_callback="https://x.test/old"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "text", "code"),
    [
        (XML, "<Response><Message>unclosed</Response>", 12100),
        (XML, "not xml at all", 12100),
        (XML, "<Reply><Message>hi</Message></Reply>", 12102),
        ("text/plain", "ok", 12300),
        ("application/json", '{"message": "ok"}', 12300),
        (None, "<Response><Message>hi</Message></Response>", 12300),
    ],
)
def test_what_cannot_be_read_asks_for_nothing(
    content_type: str | None, text: str, code: int
) -> None:
    answer = read(content_type, text)
    assert answer.replies == []
    assert [problem.code for problem in answer.problems] == [code]


def test_an_unknown_verb_or_attribute_drops_only_itself() -> None:
    text = (
        "<Response><Redirect>https://x.test/more</Redirect><Say>hi</Say>"
        '<Message colour="red">kept</Message></Response>'
    )
    answer = read(XML, text)
    assert answer.replies == [Reply("kept")]
    assert [p.code for p in answer.problems] == [12200, 12200, 12200]


@pytest.mark.parametrize(
    "verb",
    [
        "<Message></Message>",  # nothing to send
        "<Message><Media>ftp://x.test/a.png</Media></Message>",
        "<Message>" + "<Media>https://m.test/a.png</Media>" * 11 + "</Message>",
        "<Message action='javascript:alert(1)'>hi</Message>",
    ],
)
def test_a_message_that_cannot_go_is_not_sent(verb: str) -> None:
    answer = read(XML, f"<Response>{verb}</Response>")
    assert answer.replies == []
    assert [p.code for p in answer.problems] == [12200]


def test_a_body_longer_than_1600_characters_is_21617() -> None:
    assert codes(XML, f"<Response><Message>{'x' * 1601}</Message></Response>") == [21617]


def test_entities_are_refused_so_an_answer_cannot_expand_itself() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Response><Message>&b;</Message></Response>'
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<Response><Message>&x;</Message></Response>"
    )
    for text in (bomb, external):
        answer = read(XML, text)
        assert answer.replies == []
        assert [p.code for p in answer.problems] == [12100]


def test_a_get_method_is_a_warning_and_the_reply_still_goes() -> None:
    answer = read(XML, '<Response><Message method="GET">hi</Message></Response>')
    assert answer.replies == [Reply("hi")]
    assert answer.problems == [Problem(12200, "method='GET': status callbacks are POSTed")]
