"""The bodies of Messaging Services on Twilio's messaging v1 shape: a service, the numbers of
its pool, their pages, and the parameters that create and update a service or fill its pool."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from dispatcher.api.representation import ACCOUNT_SID, NUMBER_SID, SERVICE_SID, Representation
from dispatcher.intake.params import MAX_URL_CHARS, VALIDITY_MAX_S, VALIDITY_MIN_S
from dispatcher.intake.services import MAX_FRIENDLY_NAME

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
