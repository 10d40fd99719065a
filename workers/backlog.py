"""What each queue holds now, read from the record: the numbers of /metrics and ``mycpaas queues``.

The broker only carries wake-up calls, so a queue's real backlog is in Postgres: messages of a
stage that are due, callbacks pending, receipts not yet applied, inbound parts not yet joined.
For each stage:

- ``depth``: items due now, waiting for a worker;
- ``oldest_s``: how long the oldest of them has been due;
- ``scheduled``: items due later (a retry's backoff, a sender's throttle slot, a callback
  held behind an earlier one of its message);
- ``in_flight``: items a worker holds under a lease (being sent, fetched or delivered);
- ``rate_per_s``: items finished per second over the last minute (from the workers' activity).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from schemas.db import constant
from schemas.inbound import inbound_parts_table
from schemas.models import (
    callbacks_table,
    messages_table,
    receipts_table,
    stage_activity_table,
)
from schemas.types import utcnow
from workers.app import QUEUES, ROUTES, STAGE_TASKS, app

log = logging.getLogger(__name__)

RATE_WINDOW_S = 60  # "the last minute"
DUE_TOLERANCE_S = 1.0  # due within this counts as due now (see snapshot)
BROKER_TIMEOUT_S = 2.0  # a scrape must not hang on a broker that is away

# A stage and the queue its task runs on; the leased state that counts as its in-flight work.
STAGES = tuple(STAGE_TASKS)
QUEUE_OF = {stage: ROUTES[task] for stage, task in STAGE_TASKS.items()}
LEASED = {"media_fetching": "media", "sending": "carrier"}


@dataclass
class StageBacklog:
    stage: str
    queue: str
    depth: int = 0
    oldest_s: float | None = None
    scheduled: int = 0
    in_flight: int = 0
    rate_per_s: float = 0.0


def _age(now: datetime, oldest: datetime | None) -> float | None:
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())


def _by_due_time(session: Session, group: Any, when: Any, where: Any, due_by: datetime) -> Any:
    """Per group: items due by ``due_by``, items due later, and the oldest due time."""
    return session.execute(
        select(group, func.count().filter(when <= due_by), func.count().filter(when > due_by),
               func.min(when).filter(when <= due_by))
        .where(where)
        .group_by(group)
    ).all()  # fmt: skip


def snapshot(session: Session) -> list[StageBacklog]:
    # Rows committed while the snapshot runs are due "now" by their writer's clock: count
    # what falls due within a second as waiting, not as scheduled for later.
    now = utcnow()
    due_by = now + timedelta(seconds=DUE_TOLERANCE_S)
    stages = {name: StageBacklog(name, QUEUE_OF[name]) for name in STAGES}
    m, c, r = messages_table.c, callbacks_table.c, receipts_table.c

    rows = _by_due_time(session, m.stage, m.next_attempt_at, m.next_attempt_at.is_not(None), due_by)
    for stage, due, later, oldest in rows:
        if stage in LEASED:
            stages[LEASED[stage]].in_flight += due + later
        elif stage in stages:
            stages[stage].depth, stages[stage].scheduled = due, later
            stages[stage].oldest_s = _age(now, oldest)

    callbacks = stages["callbacks"]
    open_states = c.state.in_([constant("pending"), constant("delivering")])
    rows = _by_due_time(session, c.state, c.next_attempt_at, open_states, due_by)
    for state, due, later, oldest in rows:
        if state == "delivering":
            callbacks.in_flight = due + later
        else:
            callbacks.depth, callbacks.scheduled = due, later
            callbacks.oldest_s = _age(now, oldest)
    # Held behind an earlier callback of their message: due once it settles.
    callbacks.scheduled += session.execute(
        select(func.count()).where(c.state == constant("held"))
    ).scalar_one()

    receipts = stages["receipts"]
    receipts.depth, oldest = session.execute(
        select(func.count(), func.min(r.date_received)).where(r.applied_at.is_(None))
    ).one()
    receipts.oldest_s = _age(now, oldest)

    inbound, p = stages["inbound"], inbound_parts_table.c
    inbound.depth, oldest = session.execute(
        select(func.count(), func.min(p.date_received)).where(p.message_sid.is_(None))
    ).one()
    inbound.oldest_s = _age(now, oldest)

    a = stage_activity_table.c
    since = int(now.timestamp()) - RATE_WINDOW_S
    for stage, total in session.execute(
        select(a.stage, func.sum(a.count)).where(a.window_start > since).group_by(a.stage)
    ):
        if stage in stages:
            stages[stage].rate_per_s = float(total) / RATE_WINDOW_S
    return list(stages.values())


def messages_by_status(session: Session) -> dict[str, int]:
    m = messages_table.c
    rows = session.execute(select(m.status, func.count()).group_by(m.status)).all()
    return {status: count for status, count in rows}


def broker_depths() -> dict[str, int] | None:
    """Wake-up calls waiting in each broker queue (few: they are coalesced); None when the
    broker is unreachable. A queue the broker does not know (Redis keeps no empty list, and
    a queue nobody consumed yet is not declared) holds nothing."""
    depths = {}
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
            for queue in QUEUES:
                with connection.channel() as channel:  # a refused declare closes its channel
                    try:
                        depths[queue] = channel.queue_declare(queue, passive=True).message_count
                    except connection.channel_errors:
                        depths[queue] = 0
    except Exception as exc:
        log.warning("broker queue depths unavailable: %s", exc)
        return None
    return depths
