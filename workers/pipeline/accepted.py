"""Carrier ids committed as an SMPP connection's answers arrive, before their batch is: the
sink of workers/carriers/smpp/answers.py, so a crash mid-window leaves at most a window unknown.
"""

from typing import Any

from sqlalchemy import bindparam, update

from schemas.db import get_engine
from schemas.models import segments_table
from schemas.types import utcnow
from workers.carriers.base import part_of, sid_of


class EarlyRecorder:
    """Commits the carrier ids of parts just accepted, before their batch is (the SMPP driver's
    answer recorder calls it, so a crash cannot make them unknown: workers/carriers/smpp/
    answers.py). The batch's own update of these segments then finds them done; their message
    still moves with its batch.

    It runs hundreds of times a second for a few parts each, so on Postgres it is one statement
    (the pairs as arrays) on a connection of its own, not a session: a session's transaction
    cost more CPU than the hand-off it records."""

    def __init__(self, connection: str = "default") -> None:
        self._name = connection  # the carrier connection whose answers it records
        self._connection: Any = None  # the DB-API connection, held by the recorder's thread

    def __call__(self, pairs: list[tuple[str, str]]) -> None:
        now = utcnow()
        sids = [sid_of(reference) for reference, _ in pairs]
        numbers = [part_of(reference) for reference, _ in pairs]
        ids = [carrier_id for _, carrier_id in pairs]
        engine = get_engine()
        if engine.dialect.name != "postgresql":
            with engine.begin() as connection:
                s = segments_table.c
                connection.execute(
                    update(segments_table)
                    .where(s.message_sid == bindparam("b_sid"),
                           s.number == bindparam("b_number"), s.carrier_id.is_(None))
                    .values(carrier_id=bindparam("b_id"), status="submitted",
                            date_submitted=now, date_updated=now, connection=self._name),
                    [{"b_sid": sid, "b_number": number, "b_id": carrier_id}
                     for sid, number, carrier_id in zip(sids, numbers, ids, strict=True)],
                )  # fmt: skip
            return
        raw = self._connection or engine.raw_connection()
        self._connection = None
        try:
            cursor = raw.cursor()
            cursor.execute(_RECORD_ACCEPTED, {"sids": sids, "numbers": numbers, "ids": ids,
                                              "now": now, "conn": self._name})  # fmt: skip
            cursor.close()
            raw.commit()
        except BaseException:
            raw.invalidate()  # the pool gives the next call a new one
            raise
        self._connection = raw


_RECORD_ACCEPTED = (
    "UPDATE segments AS s SET carrier_id = v.id, status = 'submitted',"
    " date_submitted = %(now)s, date_updated = %(now)s, connection = %(conn)s"
    " FROM unnest(%(sids)s::text[], %(numbers)s::int[], %(ids)s::text[]) AS v(sid, number, id)"
    " WHERE s.message_sid = v.sid AND s.number = v.number AND s.carrier_id IS NULL"
)
