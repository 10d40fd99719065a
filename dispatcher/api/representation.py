"""What the API's bodies look like, as models from which ``/openapi.json`` is generated.

The handlers build their answers as plain dicts (render.py, messages/listing.py) and read
requests with dispatcher/intake/params.py; neither goes through these models, so documenting
the API costs the create path nothing. Tests keep the two honest: render.py's dicts must carry
exactly the fields declared here, and a schema-based fuzzer checks live answers against the
document.

This module holds what every body shares: the base model, the error envelope, the paging keys
and the formats of sids and dates. Each resource's bodies are in its package:
messages/representation.py, services/representation.py and numbers/representation.py.
"""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

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


class Representation(BaseModel):
    """An answer's shape. Answers may grow fields (clients ignore unknown ones)."""

    model_config = ConfigDict(populate_by_name=True)


class Error(Representation):
    """Every refusal, on both surfaces: Twilio's error envelope with Twilio's codes."""

    code: int = Field(description="Twilio's error code: 20003, 21211, …", examples=[21211])
    message: str = Field(description="What was wrong, for a person")
    more_info: str = Field(description="Twilio's page about the code")
    status: int = Field(description="The HTTP status, repeated", examples=[400])


class IsoDates(Representation):
    """A resource's dates on ``/v1``: ISO 8601, in UTC (listed after the resource's fields)."""

    date_created: datetime
    date_updated: datetime


class TwilioDates(Representation):
    """A resource's dates as Twilio renders them (listed after the resource's fields)."""

    date_created: str = Field(pattern=RFC2822)
    date_updated: str = Field(pattern=RFC2822)


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
