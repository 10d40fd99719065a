"""Bulk intake: up to 1,000 messages in one request, each checked and answered on its own.

``POST /v1/Accounts/{AccountSid}/Messages/Bulk`` takes a JSON array of objects with the create
parameters (``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``MediaUrl``, …) and an optional
``IdempotencyKey`` per item. The answer (200) holds one result per item, in order: the message,
or the error envelope that item alone would have got. Twilio has no such call; backend services
that enqueue many messages at once save a request, a transaction and a wake-up per message.

Every accepted item is stored in one transaction (one multi-row insert), then each first stage
gets one wake-up: the same durability as a single create, at a fraction of its cost. An item's
``IdempotencyKey`` works as the header does for a single create, within the batch too.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from dispatcher.errors import ApiError, BadRequest
from dispatcher.intake.committer import store
from dispatcher.intake.create import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    NewMessage,
    by_keys,
    create_message,
    parse_new_message,
    prepare,
    replay,
)
from dispatcher.intake.optouts import refusal
from dispatcher.intake.params import params_of
from schemas.db import session_scope
from schemas.models import Message
from schemas.types import utcnow

MAX_ITEMS = 1000  # per request: a few hundred kilobytes of JSON, one transaction
MAX_BODY_BYTES = 4 * 1024 * 1024  # 1,000 items of 1,600 UCS-2 characters and ten URLs fit
KEY_FIELD = "IdempotencyKey"  # an item's own Idempotency-Key

Result = Message | ApiError


@dataclass(frozen=True)
class Item:
    index: int
    new: NewMessage
    key: str | None


def create_many(account_sid: str, document: object) -> list[Result]:
    """One result per item of ``document`` (a JSON array), in order."""
    if not isinstance(document, list):
        raise BadRequest("The body must be a JSON array of messages")
    if not 0 < len(document) <= MAX_ITEMS:
        raise BadRequest(f"Send 1 to {MAX_ITEMS} messages per request, not {len(document)}")
    now = utcnow()
    results: list[Result | None] = [None] * len(document)
    items = []
    for index, entry in enumerate(document):
        try:
            items.append(_parse(index, entry, now))
        except ApiError as exc:
            results[index] = exc
    try:
        with session_scope() as session:
            _prepare_and_store(session, account_sid, items, results, now)
    except IntegrityError:  # a concurrent request stored one of these keys first
        for item in items:
            results[item.index] = _one_by_one(account_sid, document[item.index])
    return [result for result in results if result is not None]


def _parse(index: int, entry: object, now: datetime) -> Item:
    if not isinstance(entry, dict):
        raise BadRequest("Each message must be a JSON object of create parameters")
    fields = dict(entry)
    key = fields.pop(KEY_FIELD, None)
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS):
        raise BadRequest(
            f"{KEY_FIELD} must be a string of 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"
        )
    return Item(index, parse_new_message(params_of(fields), now), key)


def _prepare_and_store(
    session: Session, account_sid: str, items: list[Item], results: list[Result | None],
    now: datetime,
) -> None:  # fmt: skip
    keys = [item.key for item in items if item.key]
    earlier = by_keys(session, account_sid, keys) if keys else {}
    fresh: list[Message] = []
    for item in items:
        fingerprint = item.new.fingerprint() if item.key else None
        try:
            if item.key in earlier:
                results[item.index] = replay(earlier[item.key], fingerprint)
                continue
            message = prepare(session, account_sid, item.new, now, item.key)
        except ApiError as exc:
            results[item.index] = exc
            continue
        if item.key:
            earlier[item.key] = message  # a key repeated within the batch answers its first
        fresh.append(message)
        results[item.index] = message
    if fresh:
        refused = store(session, fresh)
        session.commit()
        for index, result in enumerate(results):  # a key repeated in the batch answers alike
            if isinstance(result, Message) and result.sid in refused:
                results[index] = refusal(result.to, refused[result.sid])


def _one_by_one(account_sid: str, entry: object) -> Result:
    """An item created alone (after a batch lost a race on an idempotency key)."""
    try:
        assert isinstance(entry, dict)
        fields = dict(entry)
        key = fields.pop(KEY_FIELD, None)
        return create_message(account_sid, params_of(fields), key)
    except ApiError as exc:
        return exc
