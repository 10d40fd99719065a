"""Scheduled messages: they wait in the record, not in the broker, and the sweeper releases them.

A message created with ``ScheduleType=fixed`` sits in stage ``scheduled`` with
``next_attempt_at = SendAt``. Each sweep moves those that are due to 'queued' and into their
first stage (``media`` for MMS, ``segment`` otherwise), so a message is released at the first
sweep at or after its time: never earlier, at most one sweep interval later, and whatever
worker restarted or broker lost its messages in between. One whose recipient opted out of its
sender meanwhile fails with 21610 instead.
"""

from datetime import datetime

from sqlalchemy import case, select
from sqlmodel import Session

from schemas.models import messages_table
from schemas.status import MessageStatus
from workers.pipeline.transitions import move
from workers.twoway.optouts import UNSUBSCRIBED, opted_out

SCHEDULED_STAGE = "scheduled"
BATCH = 5000  # messages released per transaction; a big scheduled campaign takes a few

m = messages_table.c


def release_due(session: Session, now: datetime) -> list[str]:
    """Move every scheduled message due by ``now`` to 'queued'; returns their sids."""
    released: list[str] = []
    while True:
        due = [
            tuple(row)
            for row in session.execute(
                select(m.sid, m.to, m.from_number, m.messaging_service_sid)
                .where(m.stage == SCHEDULED_STAGE, m.next_attempt_at <= now)
                .order_by(m.next_attempt_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        ]
        refused = opted_out(session, due)
        for sid, scope in refused.items():
            move(session, [sid], MessageStatus.FAILED, error_code=UNSUBSCRIBED,
                 error_message=f"Attempt to send to unsubscribed recipient (opted out of {scope})",
                 now=now, only_if={"stage": SCHEDULED_STAGE}, stage="done",
                 next_attempt_at=None)  # fmt: skip
        # A cancel that committed first has moved the row on: the status check skips it.
        sending = [sid for sid, *_ in due if sid not in refused]
        moved = move(session, sending, MessageStatus.QUEUED, now=now,
                     only_if={"stage": SCHEDULED_STAGE},
                     stage=case((m.num_media > 0, "media"), else_="segment"),
                     next_attempt_at=now)  # fmt: skip
        session.commit()
        released += moved
        if len(due) < BATCH:
            break
    return released  # each logged by ``move`` as it entered 'queued'
