"""Tables of the platform's record. Postgres is the truth; a queued task only carries an id."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

from schemas.status import MessageStatus
from schemas.types import UTCDateTime, utcnow


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    sid: str = Field(primary_key=True, max_length=34)
    friendly_name: str = Field(default="", max_length=200)
    token_salt: str = Field(max_length=32)  # see schemas/credentials.py
    retention_days: int | None = None  # None: MYCPAAS_RETENTION_DAYS (workers/retention.py)
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PhoneNumber(SQLModel, table=True):
    __tablename__ = "phone_numbers"

    phone_number: str = Field(primary_key=True, max_length=32)  # E.164
    sid: str = Field(unique=True, max_length=34)  # PN…: how Twilio's APIs name the number
    account_sid: str = Field(foreign_key="accounts.sid", index=True, max_length=34)
    segments_per_second: float | None = None  # None: the platform's default for long codes
    # Where a message the number receives is posted (Twilio's SmsUrl), and the fallback.
    sms_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sms_method: str = Field(default="POST", max_length=8)
    sms_fallback_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sms_fallback_method: str = Field(default="POST", max_length=8)
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        # Lists are newest first, keyset on (date_created, sid); one index per equality filter.
        Index("ix_messages_account_created", "account_sid", "date_created", "sid"),
        Index("ix_messages_account_to_created", "account_sid", "to", "date_created", "sid"),
        Index(
            "ix_messages_account_from_created", "account_sid", "from_number", "date_created", "sid"
        ),
        Index("ix_messages_account_status_created", "account_sid", "status", "date_created", "sid"),
        Index("ix_messages_account_sent", "account_sid", "date_sent"),
        Index(
            "ux_messages_account_idempotency",
            "account_sid",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
        # Each stage's claim and the sweeper's scan: unfinished work by stage and due time;
        # finished rows (next_attempt_at NULL) stay out of the index.
        # The sweeper's safety net: messages in 'sent' by when they entered it (few at a time).
        Index(
            "ix_messages_sent_updated",
            "date_updated",
            postgresql_where=text("status = 'sent'"),
            sqlite_where=text("status = 'sent'"),
        ),
        Index(
            "ix_messages_due",
            "stage",
            "next_attempt_at",
            postgresql_where=text("next_attempt_at IS NOT NULL"),
            sqlite_where=text("next_attempt_at IS NOT NULL"),
        ),
    )

    sid: str = Field(primary_key=True, max_length=34)
    account_sid: str = Field(
        sa_column=Column(String(34), ForeignKey("accounts.sid"), nullable=False)
    )
    to: str = Field(max_length=32)
    from_: str = Field(sa_column=Column("from_number", String(32), nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(default=MessageStatus.QUEUED.value, max_length=16)
    direction: str = Field(default="outbound-api", max_length=16)
    num_segments: int = 1
    num_media: int = 0
    encoding: str = Field(max_length=8)
    smart_encoded: bool = False
    media_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status_callback: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    messaging_service_sid: str | None = Field(default=None, max_length=34)  # no FK: outlives it
    send_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # ScheduleType=fixed
    validity_period_s: int = 36000
    expires_at: datetime = Field(sa_type=UTCDateTime)
    error_code: int | None = None
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    idempotency_key: str | None = Field(default=None, max_length=255)
    idempotency_fingerprint: str | None = Field(default=None, max_length=64)
    # Pipeline bookkeeping: the stage that owns the row (see workers/stages/) and when it is
    # due; for a row in 'sending' the due time is the end of its lease. NULL when finished.
    stage: str = Field(default="segment", max_length=16)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0  # carrier hand-off attempts that ended in a transient error
    throttle_reserved: bool = False  # its sender's token bucket already holds its slot
    reconcile: bool = False  # a lease expired: ask the carrier by reference before resending
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    date_updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    date_sent: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MessageEvent(SQLModel, table=True):
    """One row per status change: the audit trail and, later, the source of callbacks."""

    __tablename__ = "message_events"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    message_sid: str = Field(foreign_key="messages.sid", index=True, max_length=34)
    status: str = Field(max_length=16)
    error_code: int | None = None
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Segment(SQLModel, table=True):
    """One part of a message as handed to the carrier, with its client reference and receipt."""

    __tablename__ = "segments"
    __table_args__ = (
        Index(
            "ux_segments_carrier_id",
            "carrier_id",
            unique=True,
            postgresql_where=text("carrier_id IS NOT NULL"),
            sqlite_where=text("carrier_id IS NOT NULL"),
        ),
    )

    message_sid: str = Field(foreign_key="messages.sid", primary_key=True, max_length=34)
    number: int = Field(primary_key=True)  # 1-based part number
    total: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    udh_ref: int  # concatenation reference shared by the parts, 0-255
    carrier_id: str | None = Field(default=None, max_length=64)
    connection: str | None = Field(default=None, max_length=32)  # the carrier connection it left by
    status: str = Field(default="pending", max_length=16)  # pending|submitted|delivered|failed
    error_code: int | None = None
    date_submitted: datetime | None = Field(default=None, sa_type=UTCDateTime)
    date_updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def reference(self) -> str:
        return f"{self.message_sid}-{self.number}"


class Receipt(SQLModel, table=True):
    """A delivery receipt as the carrier sent it: kept until its segment is known, then applied."""

    __tablename__ = "receipts"
    __table_args__ = (
        Index(
            "ix_receipts_unapplied",
            "carrier_id",
            postgresql_where=text("applied_at IS NULL"),
            sqlite_where=text("applied_at IS NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    carrier_id: str = Field(max_length=64)
    reference: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)  # delivered|undelivered|failed
    error_code: int | None = None
    done_date: str | None = Field(default=None, max_length=10)  # YYMMDDhhmm, as carriers send
    date_received: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    applied_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Callback(SQLModel, table=True):
    """One status callback owed to a customer: an event, its URL, and where its delivery stands."""

    __tablename__ = "callbacks"
    __table_args__ = (
        Index("ix_callbacks_message", "message_sid", "id"),
        # The stage's claim: pending callbacks by due time; settled ones leave the index.
        Index(
            "ix_callbacks_due",
            "next_attempt_at",
            postgresql_where=text("state IN ('pending', 'delivering')"),
            sqlite_where=text("state IN ('pending', 'delivering')"),
        ),
        Index("ix_callbacks_settled", "state", "date_created"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    message_sid: str = Field(foreign_key="messages.sid", max_length=34)
    account_sid: str = Field(max_length=34)
    url: str = Field(sa_column=Column(Text, nullable=False))
    # Scheme, host and port the URL reaches: the unit of per-endpoint concurrency and breaking.
    endpoint: str = Field(default="", max_length=300)
    status: str = Field(max_length=16)  # the message status this callback reports
    params: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    webhook_id: str = Field(max_length=64)  # stable across retries: the receiver's dedupe key
    # An inbound message's webhook: where it goes instead when its URL fails (SmsFallbackUrl).
    fallback_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # held (behind an earlier open callback of its message) | pending | delivering | delivered
    # | failed (final 3xx/4xx) | gone (410) | skipped | dead
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    date_updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CallbackAttempt(SQLModel, table=True):
    """One try at delivering a callback, as the ledger of what the customer's endpoint did."""

    __tablename__ = "callback_attempts"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    callback_id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"),
            ForeignKey("callbacks.id"),
            nullable=False,
            index=True,
        )
    )
    url: str = Field(sa_column=Column(Text, nullable=False))
    date_attempted: datetime = Field(sa_type=UTCDateTime)
    status_code: int | None = None
    latency_ms: float
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    response_excerpt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Media(SQLModel, table=True):
    """One fetched MMS attachment: its bytes, type (decided by the bytes), size and sha256."""

    __tablename__ = "media"
    __table_args__ = (Index("ix_media_message", "message_sid", "position"),)

    sid: str = Field(primary_key=True, max_length=34)  # ME…
    message_sid: str = Field(foreign_key="messages.sid", max_length=34)
    account_sid: str = Field(max_length=34)
    position: int  # order of the MediaUrl in the request
    source_url: str = Field(sa_column=Column(Text, nullable=False))
    content_type: str = Field(max_length=64)
    size_bytes: int
    sha256: str = Field(max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PlatformState(SQLModel, table=True):
    """Facts about the installation itself, by name (the secret key's fingerprint)."""

    __tablename__ = "platform_state"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)


class MessagingService(SQLModel, table=True):
    """A Messaging Service (MG…): a pool of the account's numbers that picks each sender, and
    defaults (status callback, validity, smart encoding) for the messages sent through it."""

    __tablename__ = "messaging_services"

    sid: str = Field(primary_key=True, max_length=34)
    account_sid: str = Field(foreign_key="accounts.sid", index=True, max_length=34)
    friendly_name: str = Field(max_length=64)
    status_callback: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sticky_sender: bool = True  # one destination always hears from the same number
    smart_encoding: bool = True
    validity_period_s: int = 36000
    # Stored and shown as given; they change nothing this platform sends (see docs/api.md).
    inbound_request_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    inbound_method: str = Field(default="POST", max_length=8)
    fallback_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    fallback_method: str = Field(default="POST", max_length=8)
    synchronous_validation: bool = False
    usecase: str = Field(default="undeclared", max_length=64)
    use_inbound_webhook_on_number: bool = False
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    date_updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ServiceNumber(SQLModel, table=True):
    """A number in a service's pool; a number belongs to one service at most, as at Twilio."""

    __tablename__ = "messaging_service_numbers"

    phone_number: str = Field(foreign_key="phone_numbers.phone_number", primary_key=True,
                              max_length=32)  # fmt: skip
    service_sid: str = Field(foreign_key="messaging_services.sid", index=True, max_length=34)
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StickySender(SQLModel, table=True):
    """The sender a sticky service chose for a destination: its later messages use it too."""

    __tablename__ = "sticky_senders"

    service_sid: str = Field(foreign_key="messaging_services.sid", primary_key=True,
                             max_length=34)  # fmt: skip
    to: str = Field(primary_key=True, max_length=32)
    phone_number: str = Field(max_length=32)
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MetricCounter(SQLModel, table=True):
    """A counter the workers add to (see workers/metrics.py): one row per name and label set."""

    __tablename__ = "metric_counters"

    name: str = Field(primary_key=True, max_length=100)
    labels: str = Field(primary_key=True, max_length=200)  # "key=value,…", keys sorted
    value: float = 0.0


class StageActivity(SQLModel, table=True):
    """Items each stage finished per 10-second window: the recent rate of each queue."""

    __tablename__ = "stage_activity"

    stage: str = Field(primary_key=True, max_length=16)
    window_start: int = Field(primary_key=True)  # Unix seconds, a multiple of the window
    count: int = 0


# The Core tables, for bulk statements on hot paths (SQLModel does not type ``__table__``).
# Inbound messages' own tables are in schemas/inbound.py.
messages_table: Table = Message.__table__  # type: ignore[attr-defined]
message_events_table: Table = MessageEvent.__table__  # type: ignore[attr-defined]
segments_table: Table = Segment.__table__  # type: ignore[attr-defined]
receipts_table: Table = Receipt.__table__  # type: ignore[attr-defined]
phone_numbers_table: Table = PhoneNumber.__table__  # type: ignore[attr-defined]
callbacks_table: Table = Callback.__table__  # type: ignore[attr-defined]
callback_attempts_table: Table = CallbackAttempt.__table__  # type: ignore[attr-defined]
accounts_table: Table = Account.__table__  # type: ignore[attr-defined]
media_table: Table = Media.__table__  # type: ignore[attr-defined]
platform_state_table: Table = PlatformState.__table__  # type: ignore[attr-defined]
metric_counters_table: Table = MetricCounter.__table__  # type: ignore[attr-defined]
stage_activity_table: Table = StageActivity.__table__  # type: ignore[attr-defined]
messaging_services_table: Table = MessagingService.__table__  # type: ignore[attr-defined]
service_numbers_table: Table = ServiceNumber.__table__  # type: ignore[attr-defined]
sticky_senders_table: Table = StickySender.__table__  # type: ignore[attr-defined]
