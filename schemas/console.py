"""Tables of the operator console: who may log in, their sessions, and what they did."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, Table, Text
from sqlmodel import Field, SQLModel

from schemas.types import UTCDateTime, utcnow


class Operator(SQLModel, table=True):
    """A person who runs the platform: ``viewer`` (sees masked numbers, no bodies),
    ``operator`` (replays, cancels) or ``admin``. The password is stored as an argon2 hash."""

    __tablename__ = "operators"

    name: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=16)
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsoleSession(SQLModel, table=True):
    """A logged-in browser: the cookie holds a random token, the table its sha256, so a copy
    of the table opens no session; each has its CSRF token."""

    __tablename__ = "console_sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    operator: str = Field(foreign_key="operators.name", index=True, max_length=64)
    csrf: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """Every action taken in the console: who, what, on what, when."""

    __tablename__ = "console_audit"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    operator: str = Field(max_length=64)
    action: str = Field(max_length=32)
    target: str = Field(default="", max_length=200)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    date_created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


operators_table: Table = Operator.__table__  # type: ignore[attr-defined]
console_sessions_table: Table = ConsoleSession.__table__  # type: ignore[attr-defined]
audit_table: Table = AuditEntry.__table__  # type: ignore[attr-defined]
