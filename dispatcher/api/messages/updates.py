"""Changing a message after its creation: cancel a scheduled one, redact its text, delete it.

Each is one transaction whose compare-and-set on the message's status decides, so it races
safely with the sweeper releasing the message or the pipeline moving it on:

- cancel (``Status=canceled``): 'scheduled' → 'canceled' through the transition table, so its
  event and status callback are written with it; any other status gets 30409.
- redact (``Body=``): on a settled message (sent, delivered, failed, canceled) the body and its
  segments' text become empty and nothing else changes; otherwise 20009.
- delete: a settled message with its segments, media, status events, callbacks and their
  attempts; refused (20009) while the message still moves or one of its callbacks is being
  delivered at this moment.

Rows are locked segments first, then the message: the order in which the carrier and receipts
stages lock them, so none of this can deadlock with the pipeline.
"""

import logging

from sqlalchemy import delete, select, update
from sqlmodel import Session

from dispatcher.errors import ApiError, BadRequest, NotFound
from dispatcher.intake.params import Params, reject_unknown, single
from schemas.db import session_scope
from schemas.models import (
    callbacks_table,
    media_table,
    messages_table,
    segments_table,
)
from schemas.status import SETTLED, MessageStatus
from schemas.types import utcnow
from workers.pipeline.scheduling import SCHEDULED_STAGE
from workers.pipeline.transitions import after_commit, move
from workers.retention import erase

log = logging.getLogger(__name__)

UPDATE_PARAMS = frozenset({"Body", "Status"})  # all Twilio's update takes
NOT_CANCELABLE = 30409  # Twilio: "This message cannot be canceled"
STILL_MOVING = 20009  # Twilio: the message is still in progress
CONFLICT = 409

m, s, c = messages_table.c, segments_table.c, callbacks_table.c
SETTLED_VALUES = [status.value for status in SETTLED]


def _still_moving(sid: str, action: str) -> ApiError:
    return ApiError(
        f"Message {sid} is still in progress; it can be {action} once it is sent, delivered, "
        "failed or canceled",
        code=STILL_MOVING,
        http_status=CONFLICT,
    )


def update_message(sid: str, params: Params) -> bool:
    """Cancel or redact the (already authorized) message ``sid``; True when a status callback
    is owed (its stage must be woken)."""
    reject_unknown(params, UPDATE_PARAMS)
    status, body = single(params, "Status"), single(params, "Body")
    if status is None and body is None:
        raise BadRequest("Give Status=canceled to cancel, or an empty Body to redact")
    if status is not None and status != MessageStatus.CANCELED:
        raise BadRequest(f"Status may only be set to 'canceled', not {status!r}")
    if body:
        raise BadRequest("Body may only be set to an empty string, which redacts the message")
    with session_scope() as session:
        if status is not None:
            _cancel(session, sid)
        if body is not None:
            _redact(session, sid)
        session.commit()
        return after_commit(session)


def _cancel(session: Session, sid: str) -> None:
    canceled = move(session, [sid], MessageStatus.CANCELED, only_if={"stage": SCHEDULED_STAGE},
                    stage="done", next_attempt_at=None)  # fmt: skip
    if not canceled:
        current = session.execute(select(m.status).where(m.sid == sid)).scalar()
        raise ApiError(
            f"Message {sid} is {current}; only a scheduled message can be canceled",
            code=NOT_CANCELABLE,
            http_status=CONFLICT,
        )


def _redact(session: Session, sid: str) -> None:
    session.execute(select(s.number).where(s.message_sid == sid).with_for_update())
    redacted = session.execute(
        update(messages_table)
        .where(m.sid == sid, m.status.in_(SETTLED_VALUES))
        .values(body="", date_updated=utcnow())
        .returning(m.sid)
    ).first()
    if redacted is None:
        raise _still_moving(sid, "redacted")
    session.execute(update(segments_table).where(s.message_sid == sid).values(text=""))
    log.info("%s redacted", sid, extra={"sid": sid})


def delete_message(sid: str) -> None:
    """Remove the (already authorized) message ``sid`` and every row that hangs off it."""
    with session_scope() as session:
        session.execute(select(s.number).where(s.message_sid == sid).with_for_update())
        status = session.execute(
            select(m.status).where(m.sid == sid).with_for_update()
        ).scalar_one_or_none()
        if status is None:  # deleted by a concurrent request
            raise NotFound(f"The requested resource /Messages/{sid} was not found")
        if status not in SETTLED_VALUES:
            raise _still_moving(sid, "deleted")
        owed = session.execute(
            select(c.id, c.state).where(c.message_sid == sid).with_for_update()
        ).all()
        if any(state == "delivering" for _, state in owed):
            raise ApiError(
                f"A status callback of {sid} is being delivered; retry in a few seconds",
                code=STILL_MOVING,
                http_status=CONFLICT,
            )
        erase(session, [sid], [callback_id for callback_id, _ in owed])
        session.commit()
    log.info("%s deleted", sid, extra={"sid": sid})


def delete_media(message_sid: str, media_sid: str) -> None:
    """Remove one attachment of the (already authorized) message, once it is settled."""
    with session_scope() as session:
        status = session.execute(
            select(m.status).where(m.sid == message_sid).with_for_update()
        ).scalar_one_or_none()
        if status is not None and status not in SETTLED_VALUES:
            raise _still_moving(message_sid, "changed")
        gone = session.execute(
            delete(media_table)
            .where(media_table.c.sid == media_sid, media_table.c.message_sid == message_sid)
            .returning(media_table.c.sid)
        ).first()
        if gone is None:
            raise NotFound(f"The requested resource /Media/{media_sid} was not found")
        session.commit()
    log.info("media %s of %s deleted", media_sid, message_sid, extra={"sid": message_sid})
