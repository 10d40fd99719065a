"""Tables of the platform's record. Postgres is the truth; a queued task only carries an id."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
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
    auth_token_sha256: str = Field(max_length=64)  # the token itself is shown once, never stored
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PhoneNumber(SQLModel, table=True):
    __tablename__ = "phone_numbers"

    phone_number: str = Field(primary_key=True, max_length=32)  # E.164
    account_sid: str = Field(foreign_key="accounts.sid", index=True, max_length=34)
    segments_per_second: float | None = None  # None: the platform's default for long codes
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
        # The sweeper's scan: unfinished work by due time; finished rows stay out of the index.
        Index(
            "ix_messages_due",
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
    validity_period_s: int = 36000
    expires_at: datetime = Field(sa_type=UTCDateTime)
    error_code: int | None = None
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    idempotency_key: str | None = Field(default=None, max_length=255)
    idempotency_fingerprint: str | None = Field(default=None, max_length=64)
    # Pipeline bookkeeping: which stage owns the row, and when the sweeper must look again.
    stage: str = Field(default="segment", max_length=16)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
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


# The Core tables, for bulk statements on hot paths (SQLModel does not type ``__table__``).
messages_table: Table = Message.__table__  # type: ignore[attr-defined]
message_events_table: Table = MessageEvent.__table__  # type: ignore[attr-defined]
