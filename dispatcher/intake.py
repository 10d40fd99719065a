"""Intake: validate a create request, store it as 'queued', answer, then wake the pipeline."""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from dispatcher.accounts import owns_number
from dispatcher.errors import BadRequest, IdempotencyConflict, InvalidParameter
from dispatcher.params import Params, reject_unknown, single
from dispatcher.phone import to_e164
from schemas.db import session_scope
from schemas.ids import new_sid
from schemas.models import Message, message_events_table, messages_table
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.segmentation import MAX_BODY_CHARS, segment

log = logging.getLogger(__name__)

MAX_MEDIA = 10  # Twilio's limit per message
MAX_URL_CHARS = 2048  # longer URLs are refused by most servers anyway
MAX_IDEMPOTENCY_KEY_CHARS = 255
VALIDITY_MIN_S, VALIDITY_MAX_S = 1, 36000  # Twilio's bounds; the maximum is the default

CREATE_PARAMS = frozenset(
    {"To", "From", "Body", "MediaUrl", "StatusCallback", "ValidityPeriod", "SmartEncoded"}
)
# Parameters the twilio SDK may send that the platform accepts and ignores.
IGNORED_PARAMS = frozenset(
    {
        "MessagingServiceSid", "SendAt", "ScheduleType", "SendAsMms", "ContentRetention",
        "AddressRetention", "ProvideFeedback", "Attempt", "MaxPrice", "ForceDelivery",
        "ShortenUrls", "ContentSid", "ContentVariables", "RiskCheck", "ApplicationSid",
        "PersistentAction", "TrafficType", "Tags",
    }
)  # fmt: skip


@dataclass(frozen=True)
class NewMessage:
    to: str
    from_: str
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None
    validity_period_s: int
    smart_encoded: bool

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()


def _is_http_url(value: str) -> bool:
    if len(value) > MAX_URL_CHARS or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return False
    del port
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _number(params: Params, name: str, missing: int, invalid: int) -> str:
    raw = single(params, name)
    if raw is None or not raw.strip():
        raise InvalidParameter(f"A '{name}' phone number is required.", code=missing)
    e164 = to_e164(raw)
    if e164 is None:
        raise InvalidParameter(
            f"The '{name}' number {raw} is not a valid phone number.", code=invalid
        )
    return e164


def _boolean(params: Params, name: str) -> bool:
    raw = single(params, name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"Parameter {name} must be true or false")


def parse_new_message(params: Params) -> NewMessage:
    """Check every parameter against DESIGN's error table, in Twilio's order."""
    reject_unknown(params, CREATE_PARAMS | IGNORED_PARAMS)
    to = _number(params, "To", missing=21604, invalid=21211)
    from_ = _number(params, "From", missing=21603, invalid=21212)
    body = single(params, "Body") or ""
    media_urls = tuple(params.get("MediaUrl", []))
    if not body and not media_urls:
        raise InvalidParameter("A text message Body or Media URL is required.", code=21602)
    if len(body) > MAX_BODY_CHARS:
        raise InvalidParameter(
            f"The message body exceeds the {MAX_BODY_CHARS} character limit.", code=21617
        )
    if len(media_urls) > MAX_MEDIA:
        raise InvalidParameter(f"At most {MAX_MEDIA} MediaUrl may be given.", code=21623)
    for url in media_urls:
        if not _is_http_url(url):
            raise InvalidParameter(f"The MediaUrl {url!r} is not a valid http(s) URL.", code=21620)
    callback = single(params, "StatusCallback")
    if callback is not None and not _is_http_url(callback):
        raise InvalidParameter(
            f"The StatusCallback {callback!r} is not a valid http(s) URL.", code=21609
        )
    validity_raw = single(params, "ValidityPeriod")
    validity = VALIDITY_MAX_S
    if validity_raw is not None:
        digits = validity_raw.isascii() and validity_raw.isdigit() and len(validity_raw) <= 5
        if not digits or not VALIDITY_MIN_S <= int(validity_raw) <= VALIDITY_MAX_S:
            raise BadRequest(
                f"ValidityPeriod must be an integer from {VALIDITY_MIN_S} to {VALIDITY_MAX_S}"
            )
        validity = int(validity_raw)
    return NewMessage(
        to=to,
        from_=from_,
        body=body,
        media_urls=media_urls,
        status_callback=callback or None,
        validity_period_s=validity,
        smart_encoded=_boolean(params, "SmartEncoded"),
    )


def _find_by_key(account_sid: str, key: str) -> Message | None:
    with session_scope() as session:
        return session.execute(
            select(Message).where(
                col(Message.account_sid) == account_sid, col(Message.idempotency_key) == key
            )
        ).scalar_one_or_none()


def create_message(account_sid: str, params: Params, idempotency_key: str | None) -> Message:
    """Store a new 'queued' message (or return the one an Idempotency-Key already made)."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
    new = parse_new_message(params)
    fingerprint = new.fingerprint() if idempotency_key else None
    if idempotency_key is not None:
        earlier = _find_by_key(account_sid, idempotency_key)
        if earlier is not None:
            return _replay(earlier, fingerprint)
    segmented = segment(new.body, smart_encoding=new.smart_encoded)
    now = utcnow()
    message = Message(
        sid=new_sid("MM" if new.media_urls else "SM"),
        account_sid=account_sid,
        to=new.to,
        from_=new.from_,
        body=new.body,
        status=MessageStatus.QUEUED.value,
        num_segments=1 if new.media_urls else segmented.num_segments,  # MMS text travels whole
        num_media=len(new.media_urls),
        encoding=segmented.encoding.value,
        smart_encoded=new.smart_encoded,
        media_urls=list(new.media_urls),
        status_callback=new.status_callback,
        validity_period_s=new.validity_period_s,
        expires_at=now + timedelta(seconds=new.validity_period_s),
        idempotency_key=idempotency_key,
        idempotency_fingerprint=fingerprint,
        stage="media" if new.media_urls else "segment",
        next_attempt_at=now,  # due at once; the sweeper wakes the stage if the wake-up is lost
        date_created=now,
        date_updated=now,
    )
    with session_scope() as session:
        if not owns_number(session, account_sid, new.from_):
            raise InvalidParameter(
                f"The From phone number {new.from_} is not a number of this account.", code=21606
            )
        row = message.model_dump()
        row["from_number"] = row.pop("from_")
        try:
            session.execute(insert(messages_table).values(**row))
            session.execute(
                insert(message_events_table).values(
                    message_sid=message.sid, status=message.status, date_created=now
                )
            )
            session.commit()
        except IntegrityError:
            # Only the idempotency index can collide: a concurrent request with the same key won.
            session.rollback()
            earlier = _find_by_key(account_sid, idempotency_key) if idempotency_key else None
            if earlier is None:
                raise
            return _replay(earlier, fingerprint)
    log.info("%s is queued", message.sid, extra={"sid": message.sid, "status": message.status})
    return message


def _replay(earlier: Message, fingerprint: str | None) -> Message:
    if earlier.idempotency_fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was used with different parameters")
    return earlier
