"""The segmentation stage: split each claimed message into the segment rows the carrier gets.

One transaction claims a batch, writes its segments and hands the rows to the carrier stage;
a worker that dies half-way leaves nothing behind but the claim, rolled back with it.

A plain SMS sent now never comes here: intake stores its segments with it (``segment_rows``)
and hands it to the carrier stage at once. This stage splits what was not ready at intake:
MMS once their media are fetched, and scheduled messages when they are released.
"""

import logging
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from schemas.copying import insert_rows
from schemas.models import Message, message_events_table, messages_table, segments_table
from schemas.types import utcnow
from workers.metrics import STAGE_LATENCY, recorder
from workers.pipeline.claims import claim_due
from workers.segmentation import segment

log = logging.getLogger(__name__)

BATCH = 200  # messages per transaction; one round of inserts for all their segments


def segment_rows(
    sid: str, body: str, num_media: int, smart_encoded: bool, now: datetime
) -> list[dict[str, Any]]:
    """The segment rows of one message, as the carrier stage hands them over."""
    udh_ref = secrets.randbelow(256)
    if num_media:
        parts: tuple[str, ...] = (body,)  # MMS: the text travels whole, beside the media
    else:
        parts = segment(body, smart_encoding=smart_encoded).parts
    return [
        {"message_sid": sid, "number": number, "total": len(parts), "text": text,
         "udh_ref": udh_ref, "status": "pending", "date_updated": now}
        for number, text in enumerate(parts, start=1)
    ]  # fmt: skip


def store_new(session: Session, messages: list[Message]) -> None:
    """Insert new messages, their first events ('queued', 'scheduled', ...) and the segments
    of those that go to the carrier stage at once; the caller commits."""
    rows = [message.model_dump() for message in messages]
    segments = []
    for row in rows:
        row["from_number"] = row.pop("from_")
        if row["stage"] == "carrier":
            segments += segment_rows(row["sid"], row["body"], row["num_media"],
                                     row["smart_encoded"], row["date_created"])  # fmt: skip
    insert_rows(session, messages_table, rows)
    insert_rows(session, segments_table, segments)
    insert_rows(session, message_events_table,
                [{"message_sid": r["sid"], "status": r["status"], "date_created": r["date_created"]}
                 for r in rows])  # fmt: skip


def segment_batch(session: Session) -> int:
    """Segment one batch of due messages; returns how many were claimed."""
    now = utcnow()
    sets = {"stage": "carrier", "next_attempt_at": now, "date_updated": now}
    rows = claim_due(session, "segment", now=now, limit=BATCH, sets=sets)
    segments = []
    for row in rows:
        segments += segment_rows(row.sid, row.body, row.num_media, row.smart_encoded, now)
        log.debug("segmented %s", row.sid, extra={"sid": row.sid})
    if segments:
        session.execute(insert(segments_table), segments)
    session.commit()
    done = utcnow()
    for row in rows:
        recorder.observe(STAGE_LATENCY, (done - row.due_at).total_seconds(), stage="segment")
    return len(rows)
