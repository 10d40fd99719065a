"""The bodies of the Message resource: a message, its media and its status callbacks on both
surfaces (``/v1``'s and Twilio's), and the parameters that create, bulk-create and update one."""

from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

from dispatcher.api.representation import (
    ACCOUNT_SID,
    DIGITS,
    MEDIA_SID,
    MESSAGE_SID,
    RFC2822,
    SERVICE_SID,
    Error,
    IsoDates,
    Paging,
    Representation,
    TwilioDates,
)
from dispatcher.intake.create import IGNORED_PARAMS, MAX_MEDIA, NO_OP_VALUES, REFUSED_PARAMS
from dispatcher.intake.params import MAX_URL_CHARS, VALIDITY_MAX_S, VALIDITY_MIN_S
from schemas.status import MessageStatus
from workers.segmentation import MAX_BODY_CHARS, Encoding

Url = Annotated[str, Field(max_length=MAX_URL_CHARS)]
Urls = Annotated[list[Url], Field(max_length=MAX_MEDIA)]
# Parameters that may be left out but have no null (a form cannot send one).
OptionalUrl = Annotated[Url | None, WithJsonSchema({"type": "string", "maxLength": MAX_URL_CHARS})]
OptionalString = Annotated[str | None, WithJsonSchema({"type": "string"})]
OptionalBool = Annotated[bool | None, WithJsonSchema({"type": "boolean"})]


class Message(Representation):
    """A message on ``/v1``: ISO 8601 dates in UTC, counts as integers."""

    sid: str = Field(pattern=MESSAGE_SID, description="SM… for an SMS, MM… for an MMS")
    account_sid: str = Field(pattern=ACCOUNT_SID)
    to: str = Field(description="Destination, E.164")
    from_: str = Field(alias="from", description="Sender, E.164: a number of the account")
    body: str = Field(max_length=MAX_BODY_CHARS)
    status: MessageStatus
    direction: Literal["inbound", "outbound-api", "outbound-reply"]
    num_segments: int = Field(ge=1, description="SMS parts the body takes (1 for an MMS)")
    num_media: int = Field(ge=0, le=MAX_MEDIA)
    encoding: Encoding
    error_code: int | None = Field(description="Twilio's code when status is failed")
    error_message: str | None
    validity_period: int = Field(description="Seconds the message may wait before it fails")
    status_callback: str | None
    messaging_service_sid: str | None = Field(
        pattern=SERVICE_SID, description="The Messaging Service that chose the sender, if any"
    )
    send_at: datetime | None = Field(description="ScheduleType=fixed: when it enters the pipeline")
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
    direction: Literal["inbound", "outbound-api", "outbound-reply"]
    num_segments: str = Field(pattern=DIGITS)
    num_media: str = Field(pattern=DIGITS)
    error_code: int | None
    error_message: str | None
    messaging_service_sid: str | None = Field(pattern=SERVICE_SID)
    price: str | None
    price_unit: str
    date_created: str = Field(pattern=RFC2822, examples=["Thu, 24 Aug 2023 05:01:45 +0000"])
    date_updated: str = Field(pattern=RFC2822)
    date_sent: str | None = Field(pattern=RFC2822)
    uri: str
    subresource_uris: SubresourceUris


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


class Media(IsoDates, _MediaFields):
    """One fetched attachment of an MMS."""


class TwilioMedia(TwilioDates, _MediaFields):
    """One fetched attachment of an MMS, with Twilio's dates."""


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


def only(value: str) -> dict[str, Any]:
    """The schema of a text parameter that takes this one value or is left out (without null:
    a form cannot send one)."""
    return {"type": "string", "enum": [value]}


def no_op(harmless: str) -> dict[str, Any]:
    """The schema of a parameter accepted only with the value that changes nothing."""
    if harmless == "false":
        return {"type": "boolean", "enum": [False]}
    return only(harmless)


def _create_parameters(schema: dict[str, Any]) -> None:
    """The parameters intake names without acting on them: ignored, accepted only as a no-op,
    or refused by name (a property no value satisfies)."""
    properties = schema["properties"]
    for name in sorted(IGNORED_PARAMS):
        properties[name] = {
            "type": "string",
            "description": "Sent by the twilio SDK: accepted and ignored",
        }
    for name, harmless in sorted(NO_OP_VALUES.items()):
        properties[name] = no_op(harmless) | {
            "description": f"Accepted only as {harmless}, which changes nothing sent; any other "
            "value is refused (20001)"
        }
    for name, reason in sorted(REFUSED_PARAMS.items()):
        properties[name] = {"not": {}, "description": f"Refused (20001): {reason}"}
    # A sender: From, or a Messaging Service whose pool chooses one.
    schema["anyOf"] = [{"required": ["From"]}, {"required": ["MessagingServiceSid"]}]


class MessageCreate(BaseModel):
    """The parameters of a new message, as a form (``MediaUrl`` repeated once per URL).

    ``To`` is required, and ``From`` unless ``MessagingServiceSid`` names the Messaging Service
    whose pool chooses the sender.
    """

    model_config = ConfigDict(
        extra="forbid",
        field_title_generator=lambda name, _info: name,
        json_schema_extra=_create_parameters,
    )

    To: str = Field(
        description="Destination, E.164 (21604 when missing, 21211 when invalid)",
        examples=["+15005550006"],
    )
    From: OptionalString = Field(
        None,
        description="Sender: a number of this account (21603 missing, 21212 invalid, 21606 "
        "not the account's). Required unless MessagingServiceSid is given; with both, From is "
        "the sender",
        examples=["+15005550010"],
    )
    MessagingServiceSid: Annotated[
        str | None, WithJsonSchema({"type": "string", "pattern": SERVICE_SID})
    ] = Field(
        None,
        description="A Messaging Service of this account (21701 when it is not): without From "
        "its pool chooses the sender (21704 when the pool is empty); its StatusCallback, "
        "ValidityPeriod and SmartEncoding apply where the message gives none",
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
    ScheduleType: Annotated[Literal["fixed"] | None, WithJsonSchema(only("fixed"))] = Field(
        None,
        description="fixed: the message waits as 'scheduled' until SendAt (35111 without "
        "SendAt), then enters the pipeline",
    )
    SendAt: Annotated[
        datetime | None, WithJsonSchema({"type": "string", "format": "date-time"})
    ] = Field(
        None,
        description="With ScheduleType=fixed (400 without it): when to send, ISO 8601 (UTC "
        "unless it names a zone), more than MYCPAAS_SCHEDULE_MIN_AHEAD_S (300 s) and at most 35 "
        "days ahead (35114 too soon or not a time, 35115 too late)",
        examples=["2026-12-24T18:00:00Z"],
    )


class MessageCreateJson(MessageCreate):
    """The same parameters as a JSON object: ``MediaUrl`` one URL or a list, null as absent."""

    MediaUrl: Urls | Url = Field(  # type: ignore[assignment]
        [],
        description="An http(s) URL or a list of them, fetched at send time (21620 invalid, "
        "21623 more than 10); any makes the message an MMS",
    )


class MessageUpdate(BaseModel):
    """Twilio's update takes exactly these two: cancel a scheduled message, redact a settled
    one (both at once cancel, then redact)."""

    model_config = ConfigDict(
        extra="forbid",
        field_title_generator=lambda name, _info: name,
        json_schema_extra={"minProperties": 1},
    )

    Status: Annotated[Literal["canceled"] | None, WithJsonSchema(only("canceled"))] = Field(
        None,
        description="canceled: a scheduled message becomes 'canceled' and its status callback "
        "is sent (30409 in any other status)",
    )
    Body: Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": 0})] = Field(
        None,
        description="Empty: redact a sent, delivered, failed or canceled message, its text and "
        "its segments' text blanked (20009 before that); any other text is refused (20001)",
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


class BulkCreate(RootModel[list[Any]]):
    """Up to 1,000 messages, each a JSON object of the create parameters (``BulkItem``) and
    checked on its own: an item that is not a valid message gets its own error envelope in the
    answer, beside the others' messages, so the array's items are not constrained here."""

    root: list[Any] = Field(min_length=1, max_length=1000)


class BulkResults(Representation):
    accepted: int = Field(ge=0, description="Messages stored (or found by their key)")
    rejected: int = Field(ge=0, description="Messages refused, each with its error")
    results: list[Message | Error] = Field(
        description="One per message sent, in order: the message, or its error envelope"
    )
