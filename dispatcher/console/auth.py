"""Who may use the console: operators with argon2-hashed passwords, sessions behind an HttpOnly
SameSite cookie with a CSRF token each, failed logins throttled, and every action audited.

Roles: ``viewer`` sees phone numbers masked and no bodies; ``operator`` and ``admin`` see all
and may replay callbacks and cancel scheduled messages.
"""

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error
from sqlalchemy import delete, insert, select
from sqlmodel import Session

from schemas.console import audit_table, console_sessions_table, operators_table
from schemas.types import utcnow

ROLES = ("viewer", "operator", "admin")
ACTS = ("operator", "admin")  # may replay and cancel
SESSION_HOURS = 12
FAILURES_ALLOWED = 5  # failed logins per name (and per address) before a pause
PAUSE_S = 60.0
_hasher = PasswordHasher()
# A hash to check a password against when the name is unknown: the answer takes as long.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


class NotAllowed(Exception):
    """The login failed, or is paused after too many failures (the message says which)."""


@dataclass(frozen=True)
class Who:
    name: str
    role: str
    csrf: str

    @property
    def acts(self) -> bool:
        return self.role in ACTS


def create_operator(session: Session, name: str, role: str) -> str:
    """A new operator; returns the generated password (shown once, stored only hashed)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    password = secrets.token_urlsafe(18)
    hashed = _hasher.hash(password)
    session.execute(insert(operators_table).values(
        name=name, role=role, password_hash=hashed, date_created=utcnow()))  # fmt: skip
    audit(session, name, "operator-created", name, f"role {role}")
    session.commit()
    return password


class Throttle:
    """Failed logins per name and per address over the last ``PAUSE_S``, in this process."""

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                recent = [t for t in self._failures.get(key, []) if now - t < PAUSE_S]
                self._failures[key] = recent
                if len(recent) >= FAILURES_ALLOWED:
                    raise NotAllowed("Too many failed logins: try again in a minute")

    def failed(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, []).append(time.monotonic())


def log_in(session: Session, throttle: Throttle, name: str, password: str,
           address: str) -> str:  # fmt: skip
    """Check the password; returns the new session's cookie token."""
    keys = (f"name:{name}", f"address:{address}")
    throttle.check(*keys)
    o = operators_table.c
    found = session.execute(select(o.password_hash).where(o.name == name)).scalar()
    try:
        _hasher.verify(found or _DUMMY, password)
        ok = found is not None
    except Argon2Error:
        ok = False
    if not ok:
        throttle.failed(*keys)
        audit(session, name[:64], "login-failed", address)
        session.commit()
        raise NotAllowed("Wrong name or password")
    token = secrets.token_urlsafe(32)
    session.execute(insert(console_sessions_table).values(
        token_hash=_digest(token), operator=name, csrf=secrets.token_urlsafe(24),
        expires_at=utcnow() + timedelta(hours=SESSION_HOURS)))  # fmt: skip
    audit(session, name, "login", address)
    session.commit()
    return token


def who(session: Session, token: str | None) -> Who | None:
    """The operator a cookie token belongs to, if its session is current."""
    if not token:
        return None
    s, o = console_sessions_table.c, operators_table.c
    row = session.execute(
        select(s.operator, s.csrf, s.expires_at, o.role)
        .join(operators_table, o.name == s.operator)
        .where(s.token_hash == _digest(token))
    ).first()  # fmt: skip
    if row is None or row.expires_at <= utcnow():
        return None
    return Who(row.operator, row.role, row.csrf)


def log_out(session: Session, token: str) -> None:
    session.execute(
        delete(console_sessions_table).where(console_sessions_table.c.token_hash == _digest(token))
    )
    session.commit()


def csrf_ok(me: Who, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(me.csrf, given)


def audit(session: Session, operator: str, action: str, target: str = "",
          detail: str = "") -> None:  # fmt: skip
    """Record an action in the caller's transaction."""
    session.execute(insert(audit_table).values(
        operator=operator, action=action, target=target[:200], detail=detail,
        date_created=utcnow()))  # fmt: skip


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
