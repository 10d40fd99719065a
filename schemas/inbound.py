"""Tables of what handsets send: the parts of inbound messages, and who opted out."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Table, Text, text
from sqlmodel import Field, SQLModel

from schemas.types import UTCDateTime, utcnow


class InboundPart(SQLModel, table=True):
    """One part of a message a handset sent (mobile-originated), stored before the carrier is
    answered; joined into an inbound Message once its group is complete or too old.

    A group is (carrier, From, To, reference, total). Parts of an open group are unique, so a
    part the carrier repeats is dropped; a joined group's parts keep their message's sid."""

    __tablename__ = "inbound_parts"
    __table_args__ = (
        Index(
            "ux_inbound_parts_open",
            "carrier",
            "from_number",
            "to_number",
            "reference",
            "total",
            "number",
            "key",
            unique=True,
            postgresql_where=text("message_sid IS NULL"),
            sqlite_where=text("message_sid IS NULL"),
        ),  # fmt: skip
        # A part the carrier sends again after its group was joined is found by its group.
        Index("ix_inbound_parts_group", "from_number", "to_number", "reference"),
        Index(
            "ix_inbound_parts_waiting",
            "date_received",
            postgresql_where=text("message_sid IS NULL"),
            sqlite_where=text("message_sid IS NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    carrier: str = Field(max_length=32)  # the connection it came in on: smpp, http
    from_number: str = Field(max_length=32)
    to_number: str = Field(max_length=32)
    reference: int = 0  # the concatenation reference; 0 for a message of one part
    total: int = 1
    number: int = 1
    text: str = Field(sa_column=Column(Text, nullable=False))
    # Empty for the part of a concatenated message (its group names it); random for a message
    # of one part, which has no name: two of them from one handset are two messages.
    key: str = Field(default="", max_length=64)
    date_received: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    message_sid: str | None = Field(default=None, max_length=34)
    # An MMS's media URLs, as an HTTP gateway posted them; fetched by the media stage.
    media_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class OptOut(SQLModel, table=True):
    """A handset that texted STOP (or was added by an operator): nothing is sent to it from
    ``scope`` (the number it texted, or the Messaging Service that number is in)."""

    __tablename__ = "opt_outs"

    # The recipient first: intake looks up a batch's recipients (dispatcher/intake/optouts.py).
    phone_number: str = Field(primary_key=True, max_length=32)
    scope: str = Field(primary_key=True, index=True, max_length=34)
    account_sid: str = Field(foreign_key="accounts.sid", index=True, max_length=34)
    source: str = Field(default="keyword", max_length=16)  # keyword | operator | import
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class KeywordReply(SQLModel, table=True):
    """The automatic reply to STOP, START or HELP from ``scope`` (an account, or a Messaging
    Service, which comes first); an empty text sends none. Without a row, Twilio's default."""

    __tablename__ = "keyword_replies"

    scope: str = Field(primary_key=True, max_length=34)  # AC… or MG…
    keyword: str = Field(primary_key=True, max_length=8)  # STOP | START | HELP
    text: str = Field(sa_column=Column(Text, nullable=False))
    date_updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


inbound_parts_table: Table = InboundPart.__table__  # type: ignore[attr-defined]
opt_outs_table: Table = OptOut.__table__  # type: ignore[attr-defined]
keyword_replies_table: Table = KeywordReply.__table__  # type: ignore[attr-defined]
