"""The bodies of IncomingPhoneNumbers: the account's numbers, on both surfaces."""

from typing import Literal

from pydantic import Field

from dispatcher.api.representation import (
    ACCOUNT_SID,
    NUMBER_SID,
    SERVICE_SID,
    IsoDates,
    Paging,
    Representation,
    TwilioDates,
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
    sms_url: str | None = Field(description="Where messages the number receives are posted")
    sms_method: Literal["POST"]
    sms_fallback_url: str | None = Field(description="Called when the SmsUrl fails")
    sms_fallback_method: Literal["POST"]
    uri: str


class IncomingPhoneNumber(IsoDates, _IncomingNumberFields):
    """One of the account's numbers, as Twilio's IncomingPhoneNumber, with ISO 8601 dates."""


class TwilioIncomingPhoneNumber(TwilioDates, _IncomingNumberFields):
    """One of the account's numbers, as Twilio renders an IncomingPhoneNumber."""


class IncomingPhoneNumberPage(Paging):
    incoming_phone_numbers: list[IncomingPhoneNumber]


class TwilioIncomingPhoneNumberPage(Paging):
    incoming_phone_numbers: list[TwilioIncomingPhoneNumber]


class OptOut(Representation):
    """A recipient nothing is sent to from ``scope``: one of the account's numbers, or a
    Messaging Service (every number in it)."""

    phone_number: str = Field(description="The recipient who opted out, E.164")
    scope: str = Field(description="The number (E.164) or Messaging Service (MG…) opted out of")
    account_sid: str = Field(pattern=ACCOUNT_SID)
    source: Literal["keyword", "operator", "import"] = Field(
        description="A STOP from the handset, an operator's CLI, or a list imported by file"
    )
    date_created: str = Field(description="ISO 8601, UTC")


class OptOutPage(Paging):
    opt_outs: list[OptOut]
