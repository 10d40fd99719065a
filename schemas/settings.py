"""Settings: every knob of the platform, read once from ``MYCPAAS_*`` environment variables."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One class for the whole platform; read it through :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="MYCPAAS_", extra="ignore")

    database_url: str = "sqlite:///mycpaas.db"
    broker_url: str = "redis://127.0.0.1:6379/0"
    redis_url: str = "redis://127.0.0.1:6379/0"  # empty: no Redis (no throttles, dev mode only)
    redis_prefix: str = "mycpaas:"  # every Redis key (broker's included) starts with it
    public_base_url: str = "http://127.0.0.1:8000"
    # Derives every account's auth token and webhook secret; set your own in production.
    secret_key: str = "insecure-development-secret-key"

    db_pool_size: int = 20  # connections per process; also the API's request threads
    api_rate_limit_per_s: float = 2000.0  # creates per account per second; 0 turns it off
    api_rate_burst: int = 4000  # requests an idle account may fire at once
    max_request_bytes: int = 262_144  # 1,600 chars of UCS-2 plus ten URLs fit many times over

    carrier: Literal["simulator", "http", "smpp"] = "simulator"
    carrier_url: str = "http://127.0.0.1:8100"
    # One hand-off request, connect + read; for SMPP: connect, bind, getting a segment out and
    # each response (at most a third of sending_lease_s, so a hand-off ends inside its lease).
    carrier_timeout_s: float = 10.0
    receipts_token: str = "dev-receipts-token"  # the carrier's bearer token on /carrier/receipts

    # SMPP 3.4 (carrier "smpp"): one session per carrier worker process.
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = ""
    smpp_password: str = ""
    smpp_system_type: str = ""
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

    default_sender_sps: float = 1.0  # segments per second per long code, as US carriers allow
    sending_lease_s: int = 60  # a row in 'sending' longer than this is reconciled by the sweeper
    sweep_interval_s: float = 5.0  # how often beat starts the sweeper; its latency for lost work
    # A SendAt must lie at least this far ahead (Twilio: 300 s; error 35114 otherwise). Only
    # tests and demos want less; the sweeper releases a message within one sweep interval.
    schedule_min_ahead_s: float = 300.0

    # Comma-separated CIDRs that outbound requests (callbacks, media) may reach although they
    # are private; empty in production. Dev mode and tests allow loopback.
    outbound_allow_cidrs: str = ""
    callback_timeout_s: float = 5.0  # connect + read + write of one callback; Twilio waits 15 s
    # Ceiling of the concurrent callbacks to one endpoint per worker process; below it the limit
    # adapts to the endpoint's answers (starts at 32, halves on overload, grows while fast).
    callback_max_per_host: int = 64
    callback_breaker_failures: int = 5  # consecutive failures that open a host's circuit ...
    callback_breaker_open_s: float = 30.0  # ... for this long; then one probe is let through
    callback_backoff_base_s: float = 5.0  # first retry; doubles per attempt up to an hour
    callback_max_attempts: int = 30  # 5 s doubling to 1 h, then hourly: about a day; then dead
    callback_lease_s: float = 60.0  # a callback 'delivering' longer than this was lost

    media_max_bytes: int = 5 * 1024 * 1024  # all of one message's media together (Twilio: 5 MB)
    media_read_timeout_s: float = 5.0  # silence from a media server longer than this fails
    media_total_s: float = 30.0  # one message's fetches, however the server dribbles

    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("smpp_tps", mode="before")
    @classmethod
    def _empty_is_unlimited(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache
def get_settings() -> Settings:
    return Settings()
