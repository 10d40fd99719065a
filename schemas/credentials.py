"""Account credentials derived from the server's secret key, so the database holds no token.

The auth token is ``HMAC(secret_key, "auth-token:" sid:salt)`` and the webhook secret another
HMAC of the same: the API checks a request by deriving the token again, and the callback worker
derives it to sign callbacks the way Twilio does. A leaked database reveals no token; rotating
an account's salt rotates its token.

The key is the one source of truth, so every process must hold the same one. The database
keeps the key's fingerprint (recorded by ``mycpaas migrate``, or by the first process to
start); a process whose key has another fingerprint refuses to start, and so does one pointed
at Postgres with the built-in development key. Otherwise the operator's shell could print a
token that the API accepts while callbacks are signed with another: every signature would fail
at the customer, and nothing here would say so. Changing the key changes every account's token
and webhook secret (``mycpaas secret-key rotate``).
"""

import base64
import hashlib
import hmac

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from schemas.models import platform_state_table
from schemas.settings import get_settings

DEVELOPMENT_KEY = "insecure-development-secret-key"  # the default: for SQLite (mycpaas dev) only
FINGERPRINT = "secret_key_fingerprint"  # its row in platform_state


class SecretKeyError(Exception):
    """This process's MYCPAAS_SECRET_KEY must not be used with this database."""


def _mac(purpose: str, account_sid: str, salt: str) -> bytes:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"{purpose}:{account_sid}:{salt}".encode(), hashlib.sha256).digest()


def auth_token(account_sid: str, salt: str) -> str:
    """The account's auth token (32 hex digits, like Twilio's)."""
    return _mac("auth-token", account_sid, salt).hex()[:32]


def webhook_secret(account_sid: str, salt: str) -> str:
    """The account's Standard Webhooks signing secret (``whsec_`` + base64 of 32 bytes)."""
    return "whsec_" + base64.b64encode(_mac("webhook", account_sid, salt)).decode()


def fingerprint() -> str:
    """Names this process's key without revealing it (16 hex digits)."""
    return _mac("fingerprint", "", "").hex()[:16]


def check_secret_key(session: Session) -> None:
    """Refuse a development key on Postgres and a key other than the database's; the first
    process to ask on a fresh database records its key's fingerprint."""
    settings = get_settings()
    if settings.secret_key == DEVELOPMENT_KEY and not settings.database_url.startswith("sqlite"):
        raise SecretKeyError(
            "MYCPAAS_SECRET_KEY is the built-in development key; set a secret of your own "
            "(the same for every process) before pointing the platform at Postgres"
        )
    s = platform_state_table.c
    recorded = session.execute(select(s.value).where(s.name == FINGERPRINT)).scalar()
    if recorded is None:  # first come, first recorded: processes starting together agree on it
        dialect = session.get_bind().dialect.name
        record = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
            platform_state_table
        ).values(name=FINGERPRINT, value=fingerprint())
        session.execute(record.on_conflict_do_nothing(index_elements=["name"]))
        session.commit()
        recorded = session.execute(select(s.value).where(s.name == FINGERPRINT)).scalar()
    if recorded != fingerprint():
        raise SecretKeyError(
            f"MYCPAAS_SECRET_KEY is not the key this database's tokens were issued under "
            f"(this key's fingerprint is {fingerprint()}, the database's {recorded}); give every "
            f"process the same key, or change it for all with `mycpaas secret-key rotate`"
        )


def adopt_secret_key(session: Session) -> None:
    """Record this process's key as the database's (every token and secret changes with it)."""
    s = platform_state_table.c
    updated = session.execute(
        update(platform_state_table).where(s.name == FINGERPRINT).values(value=fingerprint())
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        session.execute(insert(platform_state_table).values(name=FINGERPRINT, value=fingerprint()))
    session.commit()
