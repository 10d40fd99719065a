"""Every status change goes through :func:`move`: the transition table, the event, in one place.

``move`` changes many messages at once (the pipeline works in batches) and only those whose
current status may legally move to the new one, so a late or repeated change is a no-op.
"""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, insert, update
from sqlmodel import Session

from schemas.models import message_events_table, messages_table
from schemas.status import TRANSITIONS, MessageStatus
from schemas.types import utcnow

# For each status, the statuses a message may be in to move to it.
_SOURCES = {
    target: [source.value for source, targets in TRANSITIONS.items() if target in targets]
    for target in MessageStatus
}


def move(
    session: Session,
    sids: Collection[str],
    status: MessageStatus,
    *,
    error_code: int | None = None,
    error_message: str | None = None,
    now: datetime | None = None,
    only_if: Sequence[ColumnElement[bool]] = (),
    **values: Any,
) -> list[str]:
    """Move ``sids`` to ``status`` where allowed; returns the sids that moved.

    ``values`` are further columns to set on the moved rows (stage, date_sent, …); ``only_if``
    further conditions (a stage's lease, say). A failure must carry its code and message.
    """
    if not sids:
        return []
    if status is MessageStatus.FAILED and (error_code is None or not error_message):
        raise ValueError("a failed message carries error_code and error_message")
    now = now or utcnow()
    m = messages_table.c
    statement = (
        update(messages_table)
        .where(m.sid.in_(list(sids)), m.status.in_(_SOURCES[status]), *only_if)
        .values(
            status=status.value,
            date_updated=now,
            error_code=error_code,
            error_message=error_message,
            **values,
        )
        .returning(m.sid)
    )
    moved = list(session.execute(statement).scalars())
    if moved:
        session.execute(
            insert(message_events_table),
            [
                {"message_sid": sid, "status": status.value, "error_code": error_code,
                 "date_created": now}
                for sid in moved
            ],
        )  # fmt: skip
    return moved
