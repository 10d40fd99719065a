"""The segmentation stage: split each claimed message into the segment rows the carrier gets.

One transaction claims a batch, writes its segments and hands the rows to the carrier stage;
a worker that dies half-way leaves nothing behind but the claim, rolled back with it.
"""

import logging
import secrets

from sqlalchemy import insert
from sqlmodel import Session

from schemas.models import segments_table
from schemas.types import utcnow
from workers.metrics import STAGE_LATENCY, recorder
from workers.pipeline.claims import claim_due
from workers.segmentation import segment

log = logging.getLogger(__name__)

BATCH = 200  # messages per transaction; one round of inserts for all their segments


def segment_batch(session: Session) -> int:
    """Segment one batch of due messages; returns how many were claimed."""
    now = utcnow()
    sets = {"stage": "carrier", "next_attempt_at": now, "date_updated": now}
    rows = claim_due(session, "segment", now=now, limit=BATCH, sets=sets)
    segments = []
    for row in rows:
        udh_ref = secrets.randbelow(256)
        if row.num_media:
            parts: tuple[str, ...] = (row.body,)  # MMS: the text travels whole, beside the media
        else:
            parts = segment(row.body, smart_encoding=row.smart_encoded).parts
        for number, text in enumerate(parts, start=1):
            segments.append(
                {"message_sid": row.sid, "number": number, "total": len(parts), "text": text,
                 "udh_ref": udh_ref, "status": "pending", "date_updated": now}
            )  # fmt: skip
        log.debug("segmented %s into %d parts", row.sid, len(parts), extra={"sid": row.sid})
    if segments:
        session.execute(insert(segments_table), segments)
    session.commit()
    done = utcnow()
    for row in rows:
        recorder.observe(STAGE_LATENCY, (done - row.due_at).total_seconds(), stage="segment")
    return len(rows)
