"""What the API's bodies look like, as models from which ``/openapi.json`` is generated.

The handlers build their answers as plain dicts (render.py, listing.py) and read requests with
params.py; neither goes through these models, so documenting the API costs the create path
nothing. Tests keep the two honest: render.py's dicts must carry exactly the fields declared
here, and a schema-based fuzzer checks live answers against the document.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

from dispatcher.intake import IGNORED_PARAMS, MAX_MEDIA, NO_OP_VALUES, REFUSED_PARAMS
from dispatcher.params import MAX_URL_CHARS, VALIDITY_MAX_S, VALIDITY_MIN_S
from dispatcher.services import MAX_FRIENDLY_NAME
from schemas.status import MessageStatus
from workers.segmentation import MAX_BODY_CHARS, Encoding

ACCOUNT_SID = r"^AC[0-9a-f]{32}$"
MESSAGE_SID = r"^(SM|MM)[0-9a-f]{32}$"
MEDIA_SID = r"^ME[0-9a-f]{32}$"
SERVICE_SID = r"^MG[0-9a-f]{32}$"
NUMBER_SID = r"^PN[0-9a-f]{32}$"
# Twilio's dates: ``Thu, 24 Aug 2023 05:01:45 +0000`` (RFC 2822, always UTC).
RFC2822 = (
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] \+0000$"
)
DIGITS = r"^[0-9]+$"  # Twilio sends num_segments and num_media as strings of digits

Url = Annotated[str, Field(max_length=MAX_URL_CHARS)]
Urls = Annotated[list[Url], Field(max_length=MAX_MEDIA)]
# Parameters that may be left out but have no null (a form cannot send one).
OptionalUrl = Annotated[Url | None, WithJsonSchema({"type": "string", "maxLength": MAX_URL_CHARS})]
OptionalString = Annotated[str | None, WithJsonSchema({"type": "string"})]
OptionalBool = Annotated[bool | None, WithJsonSchema({"type": "boolean"})]


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
    direction: Literal["outbound-api"]
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


def no_op(harmless: str) -> dict[str, Any]:
    """The schema of a parameter accepted only with the value that changes nothing."""
    if harmless == "false":
        return {"type": "boolean", "enum": [False]}
    return {"type": "string", "enum": [harmless]}


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
    ScheduleType: Annotated[
        Literal["fixed"] | None, WithJsonSchema({"type": "string", "enum": ["fixed"]})
    ] = Field(
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

    Status: Annotated[
        Literal["canceled"] | None, WithJsonSchema({"type": "string", "enum": ["canceled"]})
    ] = Field(
        None,
        description="canceled: a scheduled message becomes 'canceled' and its status callback "
        "is sent (30409 in any other status)",
    )
    Body: Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": 0})] = Field(
        None,
        description="Empty: redact a sent, delivered, failed or canceled message, its text and "
        "its segments' text blanked (20009 before that); any other text is refused (20001)",
    )


class IncomingCapabilities(Representation):
    sms: bool
    mms: bool
    voice: bool = Field(description="Always false: the platform sends messages only")
    fax: bool


class _IncomingNumberFields(Representation):
    sid: str = Field(pattern=NUMBER_SID, description="How Twilio's APIs name the number")
    account_sid: str = Field(pattern=ACCOUNT_SID)
    friendly_name: str = Field(description="The number itself")
    phone_number: str = Field(description="E.164", examples=["+15005550010"])
    api_version: Literal["2010-04-01"]
    capabilities: IncomingCapabilities
    status: Literal["in-use"]
    segments_per_second: float | None = Field(
        description="The number's throughput; null: the platform's default for long codes"
    )
    messaging_service_sid: str | None = Field(
        pattern=SERVICE_SID, description="The Messaging Service whose pool holds the number"
    )
    uri: str


class IncomingPhoneNumber(_IncomingNumberFields):
    """One of the account's numbers, as Twilio's IncomingPhoneNumber, with ISO 8601 dates."""

    date_created: datetime
    date_updated: datetime


class TwilioIncomingPhoneNumber(_IncomingNumberFields):
    """One of the account's numbers, as Twilio renders an IncomingPhoneNumber."""

    date_created: str = Field(pattern=RFC2822)
    date_updated: str = Field(pattern=RFC2822)


class IncomingPhoneNumberPage(Paging):
    incoming_phone_numbers: list[IncomingPhoneNumber]


class TwilioIncomingPhoneNumberPage(Paging):
    incoming_phone_numbers: list[TwilioIncomingPhoneNumber]


# Twilio's messaging v1 dates: ISO 8601 in whole seconds with ``Z`` (the SDK reads no other form).
V1Date = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
            "examples": ["2026-12-24T18:00:00Z"],
        }
    ),
]
Method = Literal["GET", "POST"]


class ServiceLinks(Representation):
    phone_numbers: str = Field(description="The service's pool (absolute URL)")


class Service(Representation):
    """A Messaging Service on Twilio's messaging v1 shape: absolute URLs, ISO 8601 dates.

    ``friendly_name``, ``status_callback``, ``sticky_sender``, ``smart_encoding`` and
    ``validity_period`` act; the inbound, fallback and validation fields are stored and shown but
    change nothing sent (the platform receives no messages); the rest are always as shown.
    """

    sid: str = Field(pattern=SERVICE_SID)
    account_sid: str = Field(pattern=ACCOUNT_SID)
    friendly_name: str = Field(max_length=MAX_FRIENDLY_NAME)
    date_created: V1Date
    date_updated: V1Date
    inbound_request_url: str | None
    inbound_method: Method
    fallback_url: str | None
    fallback_method: Method
    status_callback: str | None = Field(
        description="Used by the service's messages that give no StatusCallback"
    )
    sticky_sender: bool = Field(description="One destination always hears from the same number")
    mms_converter: Literal[False]
    smart_encoding: bool
    scan_message_content: Literal["inherit"]
    fallback_to_long_code: Literal[False]
    area_code_geomatch: Literal[False]
    synchronous_validation: bool
    validity_period: int = Field(ge=VALIDITY_MIN_S, le=VALIDITY_MAX_S)
    url: str
    links: ServiceLinks
    usecase: str
    us_app_to_person_registered: Literal[False]
    use_inbound_webhook_on_number: bool


class ServicePhoneNumber(Representation):
    """A number in a Messaging Service's pool (messaging v1 shape)."""

    sid: str = Field(pattern=NUMBER_SID, description="The number's PN… sid")
    account_sid: str = Field(pattern=ACCOUNT_SID)
    service_sid: str = Field(pattern=SERVICE_SID)
    date_created: V1Date = Field(description="When the number joined the pool")
    date_updated: V1Date
    phone_number: str = Field(description="E.164")
    country_code: str | None = Field(description="ISO 3166, as DE; null when unknown")
    capabilities: list[Literal["SMS", "MMS"]]
    url: str


class V1Meta(Representation):
    """Twilio's messaging v1 paging: absolute URLs, ``next_page_url`` null on the last page."""

    page: int = Field(ge=0)
    page_size: int = Field(ge=1)
    first_page_url: str
    previous_page_url: str | None
    url: str
    next_page_url: str | None
    key: str = Field(description="The key of the list beside meta")


class ServicePage(Representation):
    services: list[Service]
    meta: V1Meta


class ServicePhoneNumberPage(Representation):
    phone_numbers: list[ServicePhoneNumber]
    meta: V1Meta


def _without_null(schema: dict[str, Any]) -> None:
    """A form cannot send null: each parameter is given, as text, or left out."""
    for prop in schema["properties"].values():
        branches = prop.pop("anyOf", None)
        if branches is not None:
            rest = [branch for branch in branches if branch != {"type": "null"}]
            prop.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        if "default" in prop and prop["default"] is None:
            del prop["default"]


# A name: 1 to 64 characters, not all blank.
Name = Annotated[str, Field(min_length=1, max_length=MAX_FRIENDLY_NAME, pattern=r"\S")]
OptionalServiceUrl = Annotated[str | None, Field(max_length=MAX_URL_CHARS)]
STORED_ONLY = "Stored and shown; changes nothing sent (the platform receives no messages)"
NOT_IMPLEMENTED = "Accepted only as false: the platform does not implement it"


class ServiceUpdateJson(BaseModel):
    """The fields of a Messaging Service as a JSON object, each of the type shown (null counts as
    absent); each given one is changed. The body is validated against this model."""

    model_config = ConfigDict(extra="forbid", field_title_generator=lambda name, _info: name)

    FriendlyName: Name | None = Field(None, description="The service's name")
    StatusCallback: OptionalServiceUrl = Field(
        None,
        description="http(s) URL for the status callbacks of messages that give none (21609 "
        "invalid); empty clears it",
    )
    StickySender: bool | None = Field(
        None, description="Keep one sender per destination (default true)"
    )
    SmartEncoding: bool | None = Field(
        None, description="Smart encoding for messages that do not say (default true)"
    )
    ValidityPeriod: int | None = Field(
        None,
        ge=VALIDITY_MIN_S,
        le=VALIDITY_MAX_S,
        description="Validity of messages that give none, in seconds",
    )
    InboundRequestUrl: OptionalServiceUrl = Field(None, description=STORED_ONLY)
    InboundMethod: Method | None = Field(None, description=STORED_ONLY)
    FallbackUrl: OptionalServiceUrl = Field(None, description=STORED_ONLY)
    FallbackMethod: Method | None = Field(None, description=STORED_ONLY)
    SynchronousValidation: bool | None = Field(None, description=STORED_ONLY)
    Usecase: Name | None = Field(None, description=STORED_ONLY)
    UseInboundWebhookOnNumber: bool | None = Field(None, description=STORED_ONLY)
    MmsConverter: Literal[False] | None = Field(None, description=NOT_IMPLEMENTED)
    FallbackToLongCode: Literal[False] | None = Field(None, description=NOT_IMPLEMENTED)
    AreaCodeGeomatch: Literal[False] | None = Field(None, description=NOT_IMPLEMENTED)
    ScanMessageContent: Literal["inherit"] | None = Field(
        None, description="Accepted only as inherit: the platform does not scan content"
    )


class ServiceCreateJson(ServiceUpdateJson):
    """A new Messaging Service as a JSON object: ``FriendlyName`` and any other field."""

    FriendlyName: Name = Field(description="The service's name (required)")


class ServiceUpdate(ServiceUpdateJson):
    """The fields of a Messaging Service as a form (``true``/``false`` for booleans); each given
    one is changed."""

    model_config = ConfigDict(json_schema_extra=_without_null)


class ServiceCreate(ServiceCreateJson):
    """A new Messaging Service as a form: ``FriendlyName`` and any other field."""

    model_config = ConfigDict(json_schema_extra=_without_null)


class ServicePhoneNumberCreate(BaseModel):
    """One of the account's numbers to put in the pool, by its sid (from IncomingPhoneNumbers)."""

    model_config = ConfigDict(extra="forbid", field_title_generator=lambda name, _info: name)

    PhoneNumberSid: str = Field(
        pattern=NUMBER_SID,
        description="PN…: a number of this account (404 otherwise) in no other service (21710)",
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
