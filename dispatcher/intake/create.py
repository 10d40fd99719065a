"""Intake: validate a create request, store it as 'queued', answer, then wake the pipeline."""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from dispatcher.errors import BadRequest, IdempotencyConflict, InvalidParameter, NotFound
from dispatcher.intake.accounts import owns_number
from dispatcher.intake.committer import committer
from dispatcher.intake.params import (
    VALIDITY_MAX_S,
    Params,
    is_http_url,
    reject_unknown,
    single,
    validity_period,
)
from dispatcher.intake.scheduling import parse_schedule
from dispatcher.intake.senders import choose_sender
from dispatcher.intake.services import find_service
from schemas.db import session_scope
from schemas.ids import is_sid, new_sid
from schemas.models import Message, MessagingService
from schemas.phone import to_e164
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.pipeline.scheduling import SCHEDULED_STAGE
from workers.segmentation import MAX_BODY_CHARS, segment

log = logging.getLogger(__name__)

MAX_MEDIA = 10  # Twilio's limit per message
MAX_IDEMPOTENCY_KEY_CHARS = 255
UNKNOWN_SERVICE = 21701  # MessagingServiceSid names no service of this account

CREATE_PARAMS = frozenset(
    {"To", "From", "Body", "MediaUrl", "StatusCallback", "ValidityPeriod", "SmartEncoded",
     "ScheduleType", "SendAt", "MessagingServiceSid"}
)  # fmt: skip
# Parameters the twilio SDK may send that change nothing the platform sends, when or to whom:
# accepted and ignored (docs/api.md lists them).
IGNORED_PARAMS = frozenset(
    {"ProvideFeedback", "AddressRetention", "ContentRetention", "TrafficType", "Tags"}
)
# Parameters accepted only with the value that changes nothing (the platform does not shorten
# links, convert to MMS, force delivery or screen for SMS pumping); any other value is refused.
NO_OP_VALUES = {"ShortenUrls": "false", "SendAsMms": "false", "ForceDelivery": "false",
                "RiskCheck": "disable"}  # fmt: skip
# Parameters that would change what is sent, when or to whom, and that the platform does not
# implement: refused by name rather than ignored.
REFUSED_PARAMS = {
    "ContentSid": "Content templates are not supported; send the text as Body",
    "ContentVariables": "Content templates are not supported; send the text as Body",
    "PersistentAction": "Persistent actions are not supported",
    "ApplicationSid": "Applications are not supported; give StatusCallback instead",
    "MaxPrice": "Messages are not priced here, so a MaxPrice cannot be enforced",
    "Attempt": "Attempt is not supported; each message is sent until its validity ends",
}


@dataclass(frozen=True)
class NewMessage:
    """A create request as given; what it leaves out, its Messaging Service may supply."""

    to: str
    from_: str | None  # None: the service's pool chooses
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None
    validity_period_s: int | None
    smart_encoded: bool | None
    send_at: datetime | None  # ScheduleType=fixed: when it enters the pipeline

    def fingerprint(self) -> str:
        document = json.dumps(self.__dict__, sort_keys=True, default=str)
        return hashlib.sha256(document.encode()).hexdigest()


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


def _boolean(params: Params, name: str) -> bool | None:
    raw = single(params, name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"Parameter {name} must be true or false")


def _refuse_unsupported(params: Params) -> None:
    """A parameter that would change delivery is implemented or refused, never ignored."""
    for name, reason in REFUSED_PARAMS.items():
        if name in params:
            raise BadRequest(f"Parameter {name} is not supported: {reason}")
    for name, harmless in NO_OP_VALUES.items():
        value = single(params, name)
        if value is not None and value.lower() != harmless:
            raise BadRequest(f"Parameter {name} is supported only as {name}={harmless}")


def parse_new_message(params: Params, now: datetime) -> NewMessage:
    """Check every parameter against DESIGN's error table, in Twilio's order."""
    reject_unknown(params, CREATE_PARAMS | IGNORED_PARAMS | set(NO_OP_VALUES) | set(REFUSED_PARAMS))
    _refuse_unsupported(params)
    to = _number(params, "To", missing=21604, invalid=21211)
    service_sid = single(params, "MessagingServiceSid") or None
    if service_sid is not None and not is_sid(service_sid, "MG"):
        raise InvalidParameter(
            f"MessagingServiceSid {service_sid!r} is not a Messaging Service sid (MG…)",
            code=UNKNOWN_SERVICE,
        )
    has_from = bool((single(params, "From") or "").strip())
    from_ = (
        _number(params, "From", missing=21603, invalid=21212)
        if has_from or not service_sid
        else None
    )
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
        if not is_http_url(url):
            raise InvalidParameter(f"The MediaUrl {url!r} is not a valid http(s) URL.", code=21620)
    callback = single(params, "StatusCallback")
    if callback is not None and not is_http_url(callback):
        raise InvalidParameter(
            f"The StatusCallback {callback!r} is not a valid http(s) URL.", code=21609
        )
    validity_raw = single(params, "ValidityPeriod")
    return NewMessage(
        to=to,
        from_=from_,
        messaging_service_sid=service_sid,
        body=body,
        media_urls=media_urls,
        status_callback=callback or None,
        validity_period_s=None if validity_raw is None else validity_period(validity_raw),
        smart_encoded=_boolean(params, "SmartEncoded"),
        send_at=parse_schedule(params, now),
    )


def _find_by_key(account_sid: str, key: str) -> Message | None:
    with session_scope() as session:
        return by_keys(session, account_sid, [key]).get(key)


def by_keys(session: Session, account_sid: str, keys: list[str]) -> dict[str, Message]:
    """The messages these Idempotency-Keys made already, by key."""
    found = session.execute(
        select(Message).where(
            col(Message.account_sid) == account_sid, col(Message.idempotency_key).in_(keys)
        )
    ).scalars()
    return {message.idempotency_key: message for message in found if message.idempotency_key}


def create_message(account_sid: str, params: Params, idempotency_key: str | None) -> Message:
    """Store a new 'queued' (or 'scheduled') message, its sender chosen by its Messaging
    Service when it names one and no From; or return the one an Idempotency-Key already made."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
    now = utcnow()
    new = parse_new_message(params, now)
    fingerprint = new.fingerprint() if idempotency_key else None
    if idempotency_key is not None:
        earlier = _find_by_key(account_sid, idempotency_key)
        if earlier is not None:
            return replay(earlier, fingerprint)
    with session_scope() as session:
        message = prepare(session, account_sid, new, now, idempotency_key)
        session.commit()  # a sticky sender's first choice for ``To``, if made (senders.py)
    try:
        committer().commit(message)  # with the concurrent requests' messages
    except IntegrityError:
        # Only the idempotency index can collide: a concurrent request with the same key won.
        earlier = _find_by_key(account_sid, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        return replay(earlier, fingerprint)
    log.info("%s is %s", message.sid, message.status,
             extra={"sid": message.sid, "status": message.status})  # fmt: skip
    return message


def prepare(
    session: Session, account_sid: str, new: NewMessage, now: datetime, key: str | None = None
) -> Message:
    """The message to store for a checked request: its sender (the account's own, or its
    service's choice), its service's defaults where it gave none, its Idempotency-Key and
    the request's fingerprint. Not stored yet."""
    service = _service(session, account_sid, new.messaging_service_sid)
    if new.from_ is None:
        assert service is not None  # parse_new_message asks for From without a service
        from_ = choose_sender(session, service, new.to)
    elif owns_number(session, account_sid, new.from_):
        from_ = new.from_
    else:
        raise InvalidParameter(
            f"The From phone number {new.from_} is not a number of this account.", code=21606
        )
    return _message(account_sid, new, service, from_, now, key)


def _service(
    session: Session, account_sid: str, service_sid: str | None
) -> MessagingService | None:
    if service_sid is None:
        return None
    try:
        return find_service(session, account_sid, service_sid)
    except NotFound as exc:
        raise InvalidParameter(
            f"Messaging Service {service_sid} is not a service of this account",
            code=UNKNOWN_SERVICE,
        ) from exc


def _message(
    account_sid: str, new: NewMessage, service: MessagingService | None, from_: str,
    now: datetime, key: str | None,
) -> Message:  # fmt: skip
    """The row to store: the request, with its service's defaults where it gave none."""
    smart = new.smart_encoded
    if smart is None:
        smart = service.smart_encoding if service else False
    validity = new.validity_period_s or (service.validity_period_s if service else VALIDITY_MAX_S)
    callback = new.status_callback or (service.status_callback if service else None)
    segmented = segment(new.body, smart_encoding=smart)
    starts = new.send_at or now  # the validity period runs from when it may be sent
    # Every value is checked above: construct without validating again (a fifth of the cost).
    return Message.model_construct(
        sid=new_sid("MM" if new.media_urls else "SM"),
        account_sid=account_sid,
        to=new.to,
        from_=from_,
        messaging_service_sid=service.sid if service else None,
        body=new.body,
        status=(MessageStatus.SCHEDULED if new.send_at else MessageStatus.QUEUED).value,
        num_segments=1 if new.media_urls else segmented.num_segments,  # MMS text travels whole
        num_media=len(new.media_urls),
        encoding=segmented.encoding.value,
        smart_encoded=smart,
        media_urls=list(new.media_urls),
        status_callback=callback,
        validity_period_s=validity,
        send_at=new.send_at,
        expires_at=starts + timedelta(seconds=validity),
        stage=_first_stage(new),
        # Due at once (the sweeper wakes the stage if the wake-up is lost), or at SendAt, when
        # the sweeper releases it.
        next_attempt_at=starts,
        date_created=now,
        date_updated=now,
        idempotency_key=key,
        idempotency_fingerprint=new.fingerprint() if key else None,
    )


def _first_stage(new: NewMessage) -> str:
    """Where a new message starts: an SMS sent now is stored with its segments (committer.py)
    and goes straight to the carrier stage."""
    if new.send_at is not None:
        return SCHEDULED_STAGE
    return "media" if new.media_urls else "carrier"


def replay(earlier: Message, fingerprint: str | None) -> Message:
    """The message an Idempotency-Key made, if the request is the same (20409 otherwise)."""
    if earlier.idempotency_fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was used with different parameters")
    return earlier
