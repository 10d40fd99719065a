"""What the API's bodies look like, as models from which ``/openapi.json`` is generated.

The handlers build their answers as plain dicts (render.py, listing.py) and read requests with
params.py; neither goes through these models, so documenting the API costs the create path
nothing. Tests keep the two honest: render.py's dicts must carry exactly the fields declared
here, and a schema-based fuzzer checks live answers against the document.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

from dispatcher.intake import IGNORED_PARAMS, MAX_MEDIA
from dispatcher.params import MAX_URL_CHARS, VALIDITY_MAX_S, VALIDITY_MIN_S
from schemas.status import MessageStatus
from workers.segmentation import MAX_BODY_CHARS, Encoding

ACCOUNT_SID = r"^AC[0-9a-f]{32}$"
MESSAGE_SID = r"^(SM|MM)[0-9a-f]{32}$"
MEDIA_SID = r"^ME[0-9a-f]{32}$"
# Twilio's dates: ``Thu, 24 Aug 2023 05:01:45 +0000`` (RFC 2822, always UTC).
RFC2822 = (
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] \+0000$"
)
DIGITS = r"^[0-9]+$"  # Twilio sends num_segments and num_media as strings of digits

Url = Annotated[str, Field(max_length=MAX_URL_CHARS)]
Urls = Annotated[list[Url], Field(max_length=MAX_MEDIA)]
# A parameter that may be left out but has no null (a form cannot send one).
OptionalUrl = Annotated[Url | None, WithJsonSchema({"type": "string", "maxLength": MAX_URL_CHARS})]


class Representation(BaseModel):
    """An answer's shape. Answers may grow fields (clients ignore unknown ones)."""

    model_config = ConfigDict(populate_by_name=True)


class Error(Representation):
    """Every refusal, on both surfaces: Twilio's error envelope with Twilio's codes."""

    code: int = Field(description="Twilio's error code: 20003, 21211, …", examples=[21211])
    message: str = Field(description="What was wrong, for a person")
    more_info: str = Field(description="Twilio's page about the code")
    status: int = Field(description="The HTTP status, repeated", examples=[400])


class Message(Representation):
    """A message on ``/v1``: ISO 8601 dates in UTC, counts as integers."""

    sid: str = Field(pattern=MESSAGE_SID, description="SM… for an SMS, MM… for an MMS")
    account_sid: str = Field(pattern=ACCOUNT_SID)
    to: str = Field(description="Destination, E.164")
    from_: str = Field(alias="from", description="Sender, E.164: a number of the account")
    body: str = Field(max_length=MAX_BODY_CHARS)
    status: MessageStatus
    direction: Literal["outbound-api"]
    num_segments: int = Field(ge=1, description="SMS parts the body takes (1 for an MMS)")
    num_media: int = Field(ge=0, le=MAX_MEDIA)
    encoding: Encoding
    error_code: int | None = Field(description="Twilio's code when status is failed")
    error_message: str | None
    validity_period: int = Field(description="Seconds the message may wait before it fails")
    status_callback: str | None
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = Field(description="When the carrier took the message")
    uri: str = Field(description="This resource, relative to the API's base URL")


class SubresourceUris(Representation):
    media: str


class TwilioMessage(Representation):
    """A message on ``/2010-04-01``, rendered as Twilio renders it (the twilio SDK reads it)."""

    sid: str = Field(pattern=MESSAGE_SID, description="SM… for an SMS, MM… for an MMS")
    account_sid: str = Field(pattern=ACCOUNT_SID)
    api_version: Literal["2010-04-01"]
    to: str
    from_: str = Field(alias="from")
    body: str = Field(max_length=MAX_BODY_CHARS)
    status: MessageStatus
    direction: Literal["outbound-api"]
    num_segments: str = Field(pattern=DIGITS)
    num_media: str = Field(pattern=DIGITS)
    error_code: int | None
    error_message: str | None
    messaging_service_sid: str | None
    price: str | None
    price_unit: str
    date_created: str = Field(pattern=RFC2822, examples=["Thu, 24 Aug 2023 05:01:45 +0000"])
    date_updated: str = Field(pattern=RFC2822)
    date_sent: str | None = Field(pattern=RFC2822)
    uri: str
    subresource_uris: SubresourceUris


class Paging(Representation):
    """The paging keys of every list: relative URIs, ``next_page_uri`` null on the last page."""

    page: int = Field(ge=0)
    page_size: int = Field(ge=1)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    uri: str
    first_page_uri: str
    next_page_uri: str | None
    previous_page_uri: str | None


class MessagePage(Paging):
    messages: list[Message]


class TwilioMessagePage(Paging):
    """Exactly one key besides the paging keys, or the twilio SDK cannot read the page."""

    messages: list[TwilioMessage]


class _MediaFields(Representation):
    sid: str = Field(pattern=MEDIA_SID)
    account_sid: str = Field(pattern=ACCOUNT_SID)
    parent_sid: str = Field(pattern=MESSAGE_SID, description="The message")
    content_type: str = Field(description="Decided by the bytes", examples=["image/jpeg"])
    size: int = Field(ge=0, description="Bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    uri: str


class Media(_MediaFields):
    """One fetched attachment of an MMS."""

    date_created: datetime
    date_updated: datetime


class TwilioMedia(_MediaFields):
    """One fetched attachment of an MMS, with Twilio's dates."""

    date_created: str = Field(pattern=RFC2822)
    date_updated: str = Field(pattern=RFC2822)


class MediaList(Paging):
    media: list[Media] = Field(max_length=MAX_MEDIA)


class TwilioMediaList(Paging):
    media_list: list[TwilioMedia] = Field(max_length=MAX_MEDIA)


class CallbackAttempt(Representation):
    date_attempted: datetime | None
    url: str
    status_code: int | None = Field(description="The endpoint's answer; null when none came")
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None


class Callback(Representation):
    """A status callback owed to the customer, and every try at delivering it."""

    id: int
    status: str = Field(description="The message status it reports")
    url: str
    webhook_id: str = Field(description="Stable across retries and replays: dedupe on it")
    state: str = Field(examples=["delivered"])
    attempts: int = Field(ge=0)
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    date_created: datetime
    attempt_log: list[CallbackAttempt]


class CallbackLedger(Representation):
    callbacks: list[Callback]


class CallbackReplay(CallbackLedger):
    replayed: int = Field(ge=0, description="Callbacks queued again")


def _ignored_parameters(schema: dict[str, Any]) -> None:
    for name in sorted(IGNORED_PARAMS):
        schema["properties"][name] = {
            "type": "string",
            "description": "Sent by the twilio SDK: accepted and ignored",
        }


class MessageCreate(BaseModel):
    """The parameters of a new message, as a form (``MediaUrl`` repeated once per URL)."""

    model_config = ConfigDict(
        extra="forbid",
        field_title_generator=lambda name, _info: name,
        json_schema_extra=_ignored_parameters,
    )

    To: str = Field(
        description="Destination, E.164 (21604 when missing, 21211 when invalid)",
        examples=["+15005550006"],
    )
    From: str = Field(
        description="Sender: a number of this account (21603 missing, 21212 invalid, 21606 "
        "not the account's)",
        examples=["+15005550010"],
    )
    Body: str = Field(
        "",
        max_length=MAX_BODY_CHARS,
        description="The text; Body or MediaUrl is required (21602), 1,600 characters at most "
        "(21617)",
        examples=["Hello from mycpaas"],
    )
    MediaUrl: Urls = Field(
        [],
        description="http(s) URLs fetched at send time (21620 invalid, 21623 more than 10); "
        "any makes the message an MMS",
    )
    StatusCallback: OptionalUrl = Field(
        None, description="http(s) URL that receives every status change (21609 invalid)"
    )
    ValidityPeriod: int = Field(
        VALIDITY_MAX_S,
        ge=VALIDITY_MIN_S,
        le=VALIDITY_MAX_S,
        description="Seconds the message may wait before it fails (30036)",
    )
    SmartEncoded: bool = Field(
        False, description="Replace look-alike characters (curly quotes, dashes) by GSM ones"
    )


class MessageCreateJson(MessageCreate):
    """The same parameters as a JSON object: ``MediaUrl`` one URL or a list, null as absent."""

    MediaUrl: Urls | Url = Field(  # type: ignore[assignment]
        [],
        description="An http(s) URL or a list of them, fetched at send time (21620 invalid, "
        "21623 more than 10); any makes the message an MMS",
    )


MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "video/mp4")  # what fetching.sniff keeps


class Shapes(NamedTuple):
    """The bodies of one surface: ``/v1``'s or Twilio's."""

    message: type[Representation]
    page: type[Representation]
    media: type[Representation]
    media_list: type[Representation]


V1_SHAPES = Shapes(Message, MessagePage, Media, MediaList)
TWILIO_SHAPES = Shapes(TwilioMessage, TwilioMessagePage, TwilioMedia, TwilioMediaList)


class BulkItem(MessageCreateJson):
    """One message of a bulk create: the create parameters, and its own Idempotency-Key."""

    IdempotencyKey: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="As the Idempotency-Key header of a single create, for this message",
    )


class BulkCreate(RootModel[list[BulkItem]]):
    """Up to 1,000 messages, each checked on its own."""

    root: list[BulkItem] = Field(min_length=1, max_length=1000)


class BulkResults(Representation):
    accepted: int = Field(ge=0, description="Messages stored (or found by their key)")
    rejected: int = Field(ge=0, description="Messages refused, each with its error")
    results: list[Message | Error] = Field(
        description="One per message sent, in order: the message, or its error envelope"
    )
