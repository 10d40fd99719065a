"""The sweeper (run by beat): whatever the broker lost, the database still knows.

- scheduled messages whose SendAt has come are released to their first stage;
- rows of a stage that are due get their stage woken (a lost or never-published wake-up);
- rows in ``sending`` past their lease go back to the carrier stage to be reconciled by
  reference (their worker died or hung), never blindly resent;
- receipts waiting in the inbox get the receipts stage woken; those no segment claimed for a
  day are dropped; inbound parts waiting get the inbound stage woken (it joins a group whose
  last parts never came once it is old enough);
- a ``sent`` message whose segments are all final is settled (a safety net that should find
  nothing: each one it finds is counted and logged);
- a callback held behind its message's earlier ones, all settled, is made due (a process died
  between settling one and promoting the next; counted and logged).

Idle, a pass is two statements: the ``sent`` safety net, and one check that nothing else is
open (no unfinished message, receipt, inbound part or callback); only then the rest.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlmodel import Session

from schemas.db import constant, kept
from schemas.inbound import inbound_parts_table
from schemas.models import callbacks_table, messages_table, receipts_table
from schemas.types import utcnow
from workers import metrics
from workers.pipeline import scheduling, wakeup
from workers.stages import callbacks, inbound, media, receipts

log = logging.getLogger(__name__)

WORK_STAGES = ("segment", "media", "carrier")
PRUNE_EVERY_S = 60.0  # old stage-activity windows are deleted at most this often
m = messages_table.c
_pruned_at = -PRUNE_EVERY_S  # this process's last prune (monotonic)


@dataclass
class Sweep:
    reclaimed: list[str] = field(default_factory=list)  # sids whose lease expired
    released: list[str] = field(default_factory=list)  # scheduled sids whose time came
    woken: list[str] = field(default_factory=list)  # stages woken


def _open_work() -> Any:
    """Is there anything the sweep may act on, bar the ``sent`` safety net? Unfinished messages
    (due or not), receipts or inbound parts not applied, callbacks not settled: each through a
    partial index (or the states' index), so an idle store answers in one cheap statement."""
    held = (callbacks.PENDING, callbacks.DELIVERING, callbacks.HELD)
    return select(
        or_(
            exists().where(m.next_attempt_at.is_not(None)),
            exists().where(receipts_table.c.applied_at.is_(None)),
            exists().where(inbound_parts_table.c.message_sid.is_(None)),
            exists().where(callbacks_table.c.state.in_([constant(state) for state in held])),
        )
    )


def sweep(session: Session) -> Sweep:
    global _pruned_at
    now = utcnow()
    report = Sweep()
    if time.monotonic() - _pruned_at >= PRUNE_EVERY_S:
        metrics.prune_activity(session)
        _pruned_at = time.monotonic()
    if receipts.settle_stranded(session):
        report.woken.append("callbacks")
    if session.execute(kept("sweep.open", _open_work)).scalar():
        _sweep_open_work(session, now, report)
    else:
        session.commit()
    for stage in dict.fromkeys(report.woken):
        wakeup.wake(stage)
    return report


def _sweep_open_work(session: Session, now: datetime, report: Sweep) -> None:
    report.released = scheduling.release_due(session, now)
    report.reclaimed = list(
        session.execute(
            update(messages_table)
            .where(m.stage == "sending", m.next_attempt_at <= now)
            .values(stage="carrier", reconcile=True, next_attempt_at=now, date_updated=now)
            .returning(m.sid)
        ).scalars()
    )
    session.commit()
    report.reclaimed += media.reclaim(session, now)
    for sid in report.reclaimed:
        log.warning("lease of %s expired; its stage takes it back", sid, extra={"sid": sid})
    for stage in WORK_STAGES:
        due = select(m.sid).where(m.stage == stage, m.next_attempt_at <= now).limit(1)
        if session.execute(due).first() is not None:
            report.woken.append(stage)
    if receipts.waiting(session):
        report.woken.append("receipts")
    if inbound.waiting(session):
        report.woken.append("inbound")
    receipts.drop_orphans(session)
    promoted = callbacks.promote_stranded(session)
    if callbacks.release_lost(session) or promoted or callbacks.due(session):
        report.woken.append("callbacks")
