"""Reading the answer to an inbound message's webhook: the replies its TwiML asks for.

A ``<Response>`` of ``<Message>`` verbs asks for replies: the text directly in the verb or in
``<Body>``, up to ten ``<Media>`` URLs, and the attributes ``to``, ``from``, ``action`` (where the
reply's status callbacks go; ``statusCallback`` is its older name) and ``method``. An empty
answer or ``<Response/>`` asks for nothing. As Twilio does today, only an XML content type is
read: a ``text/plain`` answer is no reply (Twilio's 2008 API sent it as one), but 12300.

Nothing in an answer can crash anything: what cannot be read is a :class:`Problem` with Twilio's
code, recorded on the inbound message. 12100 (not XML), 12102 (the root is not ``<Response>``)
and 12300 (a content type other than XML) ask for nothing; 12200 (an unknown verb,
attribute or value) drops only the verb or attribute it names. The XML is read with DTDs and
entities refused, so an answer cannot expand itself or make the worker read files.
"""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

MAX_BYTES = 64 * 1024  # of an answer read; a longer one is cut and fails to parse (12100)
MAX_MEDIA = 10
MAX_BODY_CHARS = 1600
XML_TYPES = frozenset({"text/xml", "application/xml"})
MESSAGE_ATTRIBUTES = frozenset({"to", "from", "action", "statusCallback", "method"})


@dataclass(frozen=True)
class Problem:
    code: int
    message: str


@dataclass(frozen=True)
class Reply:
    """A reply an answer asks for; ``to``/``from_`` None: the sender, the number that received."""

    body: str
    media: tuple[str, ...] = ()
    to: str | None = None
    from_: str | None = None
    status_callback: str | None = None


@dataclass
class Answer:
    replies: list[Reply] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read(content_type: str | None, text: str | None) -> Answer:
    """What an answer (2xx) asks for."""
    if text is None or not text.strip():
        return Answer()
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in XML_TYPES:
        return Answer(problems=[Problem(12300, f"Invalid Content-Type: {kind or 'none'}")])
    try:
        root = fromstring(text.strip())
    except (ParseError, DefusedXmlException) as exc:
        return Answer(problems=[Problem(12100, f"Document parse failure: {exc}")])
    if root.tag != "Response":
        return Answer(
            problems=[Problem(12102, f"The root element is <{root.tag}>, not <Response>")]
        )
    answer = Answer()
    for verb in root:
        if verb.tag == "Message":
            _message(verb, answer)
        else:
            answer.problems.append(Problem(12200, f"<{verb.tag}> is not supported; skipped"))
    return answer


def _message(verb: Any, answer: Answer) -> None:
    problems = answer.problems
    for name in sorted(set(verb.attrib) - MESSAGE_ATTRIBUTES):
        problems.append(Problem(12200, f"<Message> has no attribute {name!r}; ignored"))
    method = verb.get("method", "POST").upper()
    if method != "POST":
        problems.append(Problem(12200, f"method={method!r}: status callbacks are POSTed"))
    texts, media = [verb.text or ""], []
    for noun in verb:
        if noun.tag == "Body":
            texts.append(noun.text or "")
        elif noun.tag == "Media":
            media.append((noun.text or "").strip())
        else:
            problems.append(Problem(12200, f"<Message> has no noun <{noun.tag}>; ignored"))
        texts.append(noun.tail or "")
    body = "".join(texts).strip()
    bad = [url for url in media if not _http_url(url)]
    callback = verb.get("action") or verb.get("statusCallback")
    if bad:
        problems.append(Problem(12200, f"<Media> {bad[0]!r} is not an http(s) URL; not sent"))
    elif len(media) > MAX_MEDIA:
        problems.append(Problem(12200, f"<Message> has {len(media)} <Media>; at most 10"))
    elif not body and not media:
        problems.append(Problem(12200, "<Message> has neither a body nor media; not sent"))
    elif len(body) > MAX_BODY_CHARS:
        problems.append(Problem(21617, f"The reply exceeds {MAX_BODY_CHARS} characters"))
    elif callback is not None and not _http_url(callback):
        problems.append(Problem(12200, f"action={callback!r} is not an http(s) URL; not sent"))
    else:
        answer.replies.append(
            Reply(body, tuple(media), verb.get("to"), verb.get("from"), callback or None)
        )


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
