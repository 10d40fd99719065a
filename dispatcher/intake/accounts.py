"""Accounts and the numbers they own; HTTP Basic authentication against them."""

import base64
import binascii
import hmac
import secrets
import time

from sqlmodel import Session, select

from dispatcher.errors import ApiError, AuthenticationError
from schemas.credentials import auth_token
from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.models import Account, PhoneNumber
from schemas.phone import to_e164

AUTH_CACHE_TTL_S = 30.0  # a verified credential is trusted this long without a database read
AUTH_CACHE_MAX = 10_000  # entries; the cache is cleared when full

_verified: dict[tuple[str, str], float] = {}
_owners: dict[str, tuple[str | None, float]] = {}


def rotate_token(account: Account) -> str:
    """Give the account a new auth token (and webhook secret); returns the token."""
    account.token_salt = secrets.token_hex(8)
    return auth_token(account.sid, account.token_salt)


def create_account(session: Session, friendly_name: str = "") -> tuple[Account, str]:
    account = Account(sid=new_sid("AC"), friendly_name=friendly_name, token_salt="")
    token = rotate_token(account)
    session.add(account)
    session.commit()
    return account, token


def add_number(
    session: Session, account_sid: str, number: str, segments_per_second: float | None = None
) -> PhoneNumber:
    e164 = to_e164(number)
    if e164 is None:
        raise ApiError(f"{number} is not a valid E.164 phone number", code=21212)
    if session.get(Account, account_sid) is None:
        raise ApiError(f"No account {account_sid}", code=20404, http_status=404)
    existing = session.get(PhoneNumber, e164)
    if existing is not None and existing.account_sid != account_sid:
        raise ApiError(f"{e164} belongs to another account", code=21606)
    row = existing or PhoneNumber(phone_number=e164, account_sid=account_sid, sid=new_sid("PN"))
    row.segments_per_second = segments_per_second
    session.add(row)
    session.commit()
    return row


def _credentials(authorization: str | None) -> tuple[str, str]:
    if not authorization or not authorization[:6].lower() == "basic ":
        raise AuthenticationError("Authenticate with HTTP Basic: AccountSid and AuthToken")
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthenticationError("Malformed Basic credentials") from exc
    sid, sep, token = decoded.partition(":")
    if not sep or "\x00" in sid:  # a NUL cannot be in any sid, nor be sent to Postgres
        raise AuthenticationError("Malformed Basic credentials")
    return sid, token


def recently_verified(authorization: str | None) -> str | None:
    """The account sid when these credentials were verified moments ago (no I/O), else None."""
    sid, token = _credentials(authorization)
    return sid if _verified.get((sid, token), 0.0) > time.monotonic() else None


def authenticate(authorization: str | None) -> str:
    """The account sid whose credentials the header carries; AuthenticationError otherwise.

    The token is derived again from the secret key, as callbacks are signed with it: a token
    the API accepts is the one every signature uses."""
    sid, token = _credentials(authorization)
    key = (sid, token)
    now = time.monotonic()
    if _verified.get(key, 0.0) > now:
        return sid
    with session_scope() as session:
        salt = session.exec(select(Account.token_salt).where(Account.sid == sid)).first()
    if salt is None or not hmac.compare_digest(auth_token(sid, salt), token):
        raise AuthenticationError("Authentication failed: unknown AccountSid or wrong AuthToken")
    if len(_verified) >= AUTH_CACHE_MAX:
        _verified.clear()
    _verified[key] = now + AUTH_CACHE_TTL_S
    return sid


def owns_number(session: Session, account_sid: str, number: str) -> bool:
    """Does ``number`` belong to the account? Answers are cached as briefly as credentials."""
    now = time.monotonic()
    cached = _owners.get(number)
    if cached is not None and cached[1] > now:
        return cached[0] == account_sid
    owner = session.exec(
        select(PhoneNumber.account_sid).where(PhoneNumber.phone_number == number)
    ).first()
    if len(_owners) >= AUTH_CACHE_MAX:
        _owners.clear()
    _owners[number] = (owner, now + AUTH_CACHE_TTL_S)
    return owner == account_sid
