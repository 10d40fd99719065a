"""Retention: a message leaves the store, with every row and media byte that belongs to it, once
it is final and older than its account's retention (``MYCPAAS_RETENTION_DAYS``, or the
account's ``retention_days``). A message that is not final stays, however old; a scheduled one
counts from its ``SendAt``.

The maintenance stage runs a pass every hour (beat); ``mycpaas retention`` runs one now, and
``--dry-run`` counts what it would remove. A pass goes account by account, oldest first, through
the (account, date_created) index, ``BATCH`` messages per transaction: their callbacks' attempts,
callbacks, media, segments and the receipts matched to them, status events, inbound parts, then
the messages. Each batch locks only its own rows for a moment; a message a request is deleting
at the same time is simply gone for one of the two.

Row by row, not by partitions: whole-partition drops would cost nothing per row, but need the
history tables partitioned on a creation time every child row carries (docs/operate.md says
what that takes). A pass removes about 4,700 messages (56,000 rows) a second on two cores
(``scripts/bench_retention.py``): 15 times the 300 messages a second this platform is built
to send, so a day's worth leaves in about an hour and a half of one core.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, exists, func, or_, select
from sqlmodel import Session

from schemas.db import any_of, session_scope
from schemas.inbound import inbound_parts_table
from schemas.models import (
    accounts_table,
    callback_attempts_table,
    callbacks_table,
    media_table,
    message_events_table,
    messages_table,
    receipts_table,
    segments_table,
)
from schemas.settings import get_settings
from schemas.status import TERMINAL
from schemas.types import utcnow
from workers.metrics import RETENTION_REMOVED, recorder
from workers.stages.callbacks import OPEN_STATES

log = logging.getLogger(__name__)

BATCH = 2000  # messages per transaction
FINAL = tuple(sorted(status.value for status in TERMINAL))
m = messages_table.c


@dataclass
class Pass:
    removed: dict[str, int] = field(default_factory=dict)  # account → messages removed
    seconds: float = 0.0


def cutoffs(session: Session, now: datetime) -> dict[str, datetime]:
    """Per account: messages created (or scheduled) before this may go."""
    default = get_settings().retention_days
    a = accounts_table.c
    rows = session.execute(select(a.sid, a.retention_days)).all()
    return {sid: now - timedelta(days=days or default) for sid, days in rows}


def _due(account: str, cutoff: datetime, limit: int) -> Select[tuple[str]]:
    """The account's messages past retention; one with a callback still open (a replay) waits
    for the next pass, so a delivery never records an attempt of a callback gone."""
    c = callbacks_table.c
    open_callback = exists().where(c.message_sid == m.sid, c.state.in_(OPEN_STATES))
    return (
        select(m.sid)
        .where(m.account_sid == account, m.date_created < cutoff, m.status.in_(FINAL),
               or_(m.send_at.is_(None), m.send_at < cutoff), ~open_callback)
        .order_by(m.date_created)
        .limit(limit)
    )  # fmt: skip


def run(dry_run: bool = False, budget_s: float | None = None) -> Pass:
    """One pass over every account; with ``dry_run`` count what it would remove."""
    started, result = time.monotonic(), Pass()
    with session_scope() as session:
        limits = cutoffs(session, utcnow())
    for account, cutoff in limits.items():
        while True:
            with session_scope() as session:
                if dry_run:
                    count = session.execute(
                        select(func.count()).select_from(_due(account, cutoff, 10**9).subquery())
                    ).scalar_one()
                    result.removed[account] = count
                    break
                sids = list(session.execute(_due(account, cutoff, BATCH)).scalars())
                gone = remove(session, sids) if sids else []
                session.commit()
            if gone:
                result.removed[account] = result.removed.get(account, 0) + len(gone)
                recorder.count(RETENTION_REMOVED, len(gone))
            if len(sids) < BATCH or (budget_s and time.monotonic() - started > budget_s):
                break
    result.seconds = time.monotonic() - started
    total = sum(result.removed.values())
    if total or dry_run:
        log.info("retention: %s %d messages in %.1f s", "would remove" if dry_run else "removed",
                 total, result.seconds)  # fmt: skip
    return result


def remove(session: Session, sids: list[str]) -> list[str]:
    """Delete the messages and every row that hangs off them; the caller commits. Their
    callbacks are locked first: one a replay made due since they were chosen keeps its
    message for the next pass (a claim waits for this transaction, then finds nothing).
    Returns the sids removed."""
    c = callbacks_table.c
    hooks = session.execute(
        select(c.id, c.message_sid, c.state).where(any_of(c.message_sid, sids))
        .order_by(c.id).with_for_update()
    ).all()  # fmt: skip
    busy = {hook.message_sid for hook in hooks if hook.state in OPEN_STATES}
    sids = [sid for sid in sids if sid not in busy]
    erase(session, sids, [hook.id for hook in hooks if hook.message_sid not in busy])
    return sids


def erase(session: Session, sids: list[str], callback_ids: list[int]) -> None:
    """Delete the messages ``sids`` and every row that hangs off them: ``callback_ids`` (their
    callbacks, locked by the caller) with their attempts, applied receipts, media, segments,
    events, an inbound message's parts. The caller commits."""
    c, s = callbacks_table.c, segments_table.c
    if callback_ids:
        session.execute(delete(callback_attempts_table).where(
            any_of(callback_attempts_table.c.callback_id, callback_ids)))  # fmt: skip
        session.execute(delete(callbacks_table).where(any_of(c.id, callback_ids)))
    carrier_ids = [cid for cid in session.execute(
        select(s.carrier_id).where(any_of(s.message_sid, sids))).scalars() if cid]  # fmt: skip
    if carrier_ids:
        session.execute(delete(receipts_table).where(
            any_of(receipts_table.c.carrier_id, carrier_ids),
            receipts_table.c.applied_at.is_not(None)))  # fmt: skip
    session.execute(delete(media_table).where(any_of(media_table.c.message_sid, sids)))
    session.execute(delete(segments_table).where(any_of(s.message_sid, sids)))
    session.execute(delete(message_events_table).where(
        any_of(message_events_table.c.message_sid, sids)))  # fmt: skip
    inbound = session.execute(
        select(m.from_number, m.to).where(any_of(m.sid, sids), m.direction == "inbound")
    ).all()
    if inbound:
        p = inbound_parts_table.c
        session.execute(delete(inbound_parts_table).where(
            any_of(p.from_number, {row.from_number for row in inbound}),
            any_of(p.to_number, {row.to for row in inbound}),
            any_of(p.message_sid, sids)))  # fmt: skip
    session.execute(delete(messages_table).where(any_of(m.sid, sids)))


def oldest(session: Session) -> datetime | None:
    """The oldest stored message's date_created: one index lookup per account (a global
    min over the messages would read the whole table)."""
    a = accounts_table.c
    each = select(func.min(m.date_created)).where(m.account_sid == a.sid).scalar_subquery()
    found: datetime | None = session.execute(
        select(func.min(each)).select_from(accounts_table)
    ).scalar()
    return found
