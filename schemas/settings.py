"""Settings: every knob of the platform, read once from ``MYCPAAS_*`` environment variables.

Every value is checked as the process starts, against what the protocol or library that uses it
will accept later (SMPP's field lengths, URL schemes, ports, CIDRs): a process with a value that
cannot work stops at once with a line naming the variable and the rule (:func:`problems`),
instead of running blind.
"""

import ipaddress
import logging
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.carriers import CarriersFileError
from schemas.carriers import load as load_carriers

ENV_PREFIX = "MYCPAAS_"


def _url(*schemes: str, empty: bool = False) -> AfterValidator:
    """A URL whose scheme is one of ``schemes`` (``"sqla+"`` takes any ``sqla+…``); an HTTP
    URL must name its host."""

    def check(value: str) -> str:
        if empty and value == "":
            return value
        parts = urlsplit(value)
        scheme = parts.scheme
        if not any(scheme == s or (s.endswith("+") and scheme.startswith(s)) for s in schemes):
            names = " or ".join(f"{s}…" if s.endswith("+") else f"{s}://" for s in schemes)
            raise ValueError(f"must be a URL starting with {names}")
        if scheme in ("http", "https") and not parts.hostname:
            raise ValueError("names no host")
        try:
            parts.port  # noqa: B018 (parsing it is the check)
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        return value

    return AfterValidator(check)


def smpp_string(name: str, max_chars: int, value: str) -> str:
    """An SMPP 3.4 C-octet string: ASCII, at most ``max_chars`` characters (its NUL aside);
    ValueError naming the rule otherwise."""
    if not value.isascii():
        raise ValueError(f"the SMPP {name} must be ASCII")
    if len(value) > max_chars:
        raise ValueError(
            f"the SMPP {name} holds at most {max_chars} characters (SMPP 3.4); "
            f"this one has {len(value)}"
        )
    return value


def _smpp_field(name: str, max_chars: int) -> AfterValidator:
    return AfterValidator(lambda value: smpp_string(name, max_chars, value))


def _cidrs(value: str) -> str:
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not a CIDR (e.g. 10.0.0.0/8)") from None
    return value


def _log_level(value: str) -> str:
    if not isinstance(logging.getLevelName(value.upper()), int):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


# Never repeated in an error: they are, or may hold, a password.
SECRETS = {"secret_key", "receipts_token", "smpp_password", "database_url", "broker_url",
           "redis_url"}  # fmt: skip
Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[float, Field(gt=0)]


def _carriers_file(path: str) -> str:
    """A carriers file that cannot work stops every process at start, naming its line."""
    if path:
        try:
            load_carriers(path)
        except CarriersFileError as exc:
            raise ValueError(str(exc)) from None
    return path


class Settings(BaseSettings):
    """One class for the whole platform; read it through :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: Annotated[str, _url("postgresql", "postgresql+", "sqlite", "sqlite+")] = (
        "sqlite:///mycpaas.db"
    )
    broker_url: Annotated[str, _url("redis", "rediss", "amqp", "amqps", "pyamqp", "sqla+")] = (
        "redis://127.0.0.1:6379/0"
    )
    # empty: no Redis (no throttles, dev mode only)
    redis_url: Annotated[str, _url("redis", "rediss", "unix", empty=True)] = (
        "redis://127.0.0.1:6379/0"
    )
    redis_prefix: str = "mycpaas:"  # every Redis key (broker's included) starts with it
    public_base_url: Annotated[str, _url("http", "https")] = "http://127.0.0.1:8000"
    # Derives every account's auth token and webhook secret; set your own in production.
    secret_key: str = "insecure-development-secret-key"

    db_pool_size: Annotated[int, Field(ge=1)] = (
        20  # connections per process; also the API's request threads
    )
    api_rate_limit_per_s: float = 2000.0  # creates per account per second; 0 turns it off
    api_rate_burst: int = 4000  # requests an idle account may fire at once
    max_request_bytes: int = 262_144  # 1,600 chars of UCS-2 plus ten URLs fit many times over

    carrier: Literal["simulator", "http", "smpp"] = "simulator"
    # Where MMS go when they cannot take MYCPAAS_CARRIER's way (SMPP carries no MMS): an HTTP
    # gateway at MYCPAAS_CARRIER_URL. Empty: every message goes through MYCPAAS_CARRIER.
    mms_carrier: Literal["", "simulator", "http"] = ""
    # Named connections and the routes between them (schemas/carriers.py); when set, it
    # replaces the single-carrier settings above for the carrier workers.
    carriers_file: Annotated[str, AfterValidator(_carriers_file)] = ""
    carrier_url: Annotated[str, _url("http", "https")] = "http://127.0.0.1:8100"
    # One hand-off request, connect + read; for SMPP: connect, bind, getting a segment out and
    # each response (at most a third of sending_lease_s, so a hand-off ends inside its lease).
    carrier_timeout_s: Positive = 10.0
    receipts_token: str = "dev-receipts-token"  # the carrier's bearer token on /carrier/receipts

    # SMPP 3.4 (carrier "smpp"): one session per carrier worker process.
    smpp_host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    smpp_port: Port = 2775
    smpp_system_id: Annotated[str, _smpp_field("system_id", 15)] = ""
    smpp_password: Annotated[str, _smpp_field("password", 8)] = ""
    smpp_system_type: Annotated[str, _smpp_field("system_type", 12)] = ""
    smpp_bind: Literal["transceiver", "transmitter+receiver"] = "transceiver"
    smpp_window: int = Field(default=10, ge=1)  # outstanding submit_sm per bind
    smpp_tps: float | None = Field(default=None, gt=0)  # whole account, all binds; None: no cap
    smpp_enquire_link_s: float = Field(default=30.0, gt=0)  # idle time before an enquire_link
    smpp_tls: bool = False
    # A submit_sm that left unanswered (connection lost, timeout, worker killed): send it
    # again (a possible duplicate) or fail it (30008). Counted either way.
    smpp_unknown_outcome: Literal["resend", "fail"] = "resend"
    # Which side writes message ids in hexadecimal while the other writes decimal (some SMSCs
    # answer submit_sm in hex and report receipts in decimal): that side's ids are converted.
    smpp_hex_ids: Literal["none", "submit", "receipt"] = "none"

    # Final messages older than this (an account's retention_days, when set) leave the store.
    retention_days: Annotated[int, Field(ge=1)] = 400
    inbound_reassembly_s: Positive = 300.0  # an MO still missing parts after this is stored
    # An inbound message's webhook with no fallback URL is retried this long, then dead.
    inbound_webhook_ttl_s: Positive = 3600.0
    default_sender_sps: float = 1.0  # segments per second per long code, as US carriers allow
    sending_lease_s: Annotated[int, Field(ge=1)] = (
        60  # a row in 'sending' longer than this is reconciled by the sweeper
    )
    # A carrier worker woken while messages keep coming waits this long for more before it
    # claims (workers/pipeline/gather.py): latency bought for CPU; 0 claims at once.
    carrier_gather_s: Annotated[float, Field(ge=0, le=1)] = 0.03
    sweep_interval_s: Positive = 5.0  # how often beat starts the sweeper; its latency for lost work
    # A SendAt must lie at least this far ahead (Twilio: 300 s; error 35114 otherwise). Only
    # tests and demos want less; the sweeper releases a message within one sweep interval.
    schedule_min_ahead_s: float = 300.0

    # Comma-separated CIDRs that outbound requests (callbacks, media) may reach although they
    # are private; empty in production. Dev mode and tests allow loopback.
    outbound_allow_cidrs: Annotated[str, AfterValidator(_cidrs)] = ""
    callback_timeout_s: Positive = 5.0  # connect + read + write of one callback; Twilio waits 15 s
    # Ceiling of the concurrent callbacks to one endpoint per worker process; below it the limit
    # adapts to the endpoint's answers (starts at 32, halves on overload, grows while fast).
    callback_max_per_host: Annotated[int, Field(ge=1)] = 64
    callback_breaker_failures: int = 5  # consecutive failures that open a host's circuit ...
    callback_breaker_open_s: float = 30.0  # ... for this long; then one probe is let through
    callback_backoff_base_s: float = 5.0  # first retry; doubles per attempt up to an hour
    callback_max_attempts: int = 30  # 5 s doubling to 1 h, then hourly: about a day; then dead
    callback_lease_s: float = 60.0  # a callback 'delivering' longer than this was lost

    media_max_bytes: int = 5 * 1024 * 1024  # all of one message's media together (Twilio: 5 MB)
    media_read_timeout_s: float = 5.0  # silence from a media server longer than this fails
    media_total_s: float = 30.0  # one message's fetches, however the server dribbles

    log_format: Literal["text", "json"] = "text"
    log_level: Annotated[str, AfterValidator(_log_level)] = "INFO"

    @field_validator("smpp_tps", mode="before")
    @classmethod
    def _empty_is_unlimited(cls, value: object) -> object:
        return None if value == "" else value


class InvalidSettings(SystemExit):
    """Settings that cannot work: the process stops at once with this message (exit 1)."""


@lru_cache
def get_settings() -> Settings:
    """The process's settings; :class:`InvalidSettings` names each value that cannot work."""
    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidSettings("invalid settings:\n  " + "\n  ".join(problems(exc))) from None


def problems(error: ValidationError) -> list[str]:
    """One line per invalid setting, named as it is set: ``MYCPAAS_SMPP_PASSWORD: …``."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        shown = "" if field in SECRETS else f" (got {item.get('input')!r})"
        lines.append(f"{ENV_PREFIX}{field.upper()}: {message}{shown}")
    return lines
