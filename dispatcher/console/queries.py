"""What the console's pages read from the record: the same tables ``mycpaas queues`` and the
API read, so the console survives restarts and shows what the pipeline did."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlmodel import Session

from schemas.console import audit_table
from schemas.models import (
    accounts_table,
    callback_attempts_table,
    callbacks_table,
    media_table,
    message_events_table,
    messages_table,
    segments_table,
)
from schemas.types import utcnow

PAGE = 50
m, c, a = messages_table.c, callbacks_table.c, callback_attempts_table.c
FILTERS = ("sid", "to", "from", "status", "error_code", "account", "direction", "since", "until")


def _recent(since: datetime) -> Any:
    """Messages created since ``since``, through each account's (account, date) index."""
    return and_(m.account_sid.in_(select(accounts_table.c.sid)), m.date_created >= since)


def overview(session: Session) -> dict[str, Any]:
    now = utcnow()
    figures: dict[str, Any] = {}
    for label, span in (("hour", timedelta(hours=1)), ("day", timedelta(days=1))):
        rows = session.execute(
            select(m.status, func.count()).where(_recent(now - span)).group_by(m.status)
        ).all()
        counts = {status: count for status, count in rows}
        settled = counts.get("delivered", 0) + counts.get("failed", 0)
        figures[label] = {
            "counts": dict(sorted(counts.items())),
            "total": sum(counts.values()),
            "failure_ratio": counts.get("failed", 0) / settled if settled else 0.0,
        }
    figures["errors"] = session.execute(
        select(m.error_code, func.count().label("n"))
        .where(_recent(now - timedelta(days=1)), m.error_code.is_not(None))
        .group_by(m.error_code).order_by(func.count().desc()).limit(10)
    ).all()  # fmt: skip
    return figures


@dataclass(frozen=True)
class Search:
    values: dict[str, str]
    after: tuple[datetime, str] | None = None  # the keyset: (date_created, sid) of the last row

    def statement(self) -> Select[Any]:
        v = self.values
        where = []
        exact = {"sid": m.sid, "to": m.to, "from": m.from_number, "status": m.status,
                 "account": m.account_sid, "direction": m.direction}  # fmt: skip
        for key, column in exact.items():
            if v.get(key):
                where.append(column == v[key].strip())
        if v.get("error_code", "").strip().isdigit():
            where.append(m.error_code == int(v["error_code"]))
        since, until = _day(v.get("since")), _day(v.get("until"), 1)
        if since is not None:
            where.append(m.date_created >= since)
        if until is not None:
            where.append(m.date_created < until)
        if self.after is not None:
            moment, sid = self.after
            where.append(or_(m.date_created < moment, and_(m.date_created == moment, m.sid < sid)))
        return (
            select(m.sid, m.account_sid, m.to, m.from_number, m.status, m.direction,
                   m.error_code, m.body, m.num_segments, m.num_media, m.date_created)
            .where(*where).order_by(m.date_created.desc(), m.sid.desc())
        )  # fmt: skip


def _day(value: str | None, plus_days: int = 0) -> Any:
    """``YYYY-MM-DD`` (or an ISO time) as a UTC moment; None when it is not one."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=utcnow().tzinfo)
    return moment + timedelta(days=plus_days)


def search(session: Session, query: Search) -> list[Any]:
    return list(session.execute(query.statement().limit(PAGE)).all())


def message(session: Session, sid: str) -> dict[str, Any] | None:
    row = session.execute(select(messages_table).where(m.sid == sid)).first()
    if row is None:
        return None
    e, s, md = message_events_table.c, segments_table.c, media_table.c
    hooks = session.execute(
        select(callbacks_table).where(c.message_sid == sid).order_by(c.id)
    ).all()
    attempts = session.execute(
        select(callback_attempts_table).where(a.callback_id.in_([h.id for h in hooks]))
        .order_by(a.id)
    ).all()  # fmt: skip
    return {
        "message": row,
        "events": session.execute(
            select(e.status, e.error_code, e.date_created)
            .where(e.message_sid == sid)
            .order_by(e.id)
        ).all(),  # fmt: skip
        "segments": session.execute(
            select(segments_table).where(s.message_sid == sid).order_by(s.number)
        ).all(),  # fmt: skip
        "media": session.execute(
            select(md.sid, md.source_url, md.content_type, md.size_bytes)
            .where(md.message_sid == sid)
            .order_by(md.position)
        ).all(),  # fmt: skip
        "callbacks": [(hook, [t for t in attempts if t.callback_id == hook.id]) for hook in hooks],
    }


def endpoints(session: Session) -> list[Any]:
    """Per callback endpoint: what waits, what is out, what died, and the last hour's
    attempts with their success ratio and p95 latency."""
    hour = utcnow() - timedelta(hours=1)
    states = session.execute(
        select(c.endpoint, c.state, func.count()).where(c.state.in_(("pending", "delivering",
                                                                      "held", "dead")))
        .group_by(c.endpoint, c.state)
    ).all()  # fmt: skip
    tried = session.execute(
        select(c.endpoint, func.count(),
               func.count().filter(a.status_code.between(200, 299)),
               func.max(a.latency_ms))
        .join(callbacks_table, c.id == a.callback_id)
        .where(a.date_attempted >= hour).group_by(c.endpoint)
    ).all()  # fmt: skip
    table: dict[str, dict[str, Any]] = {}
    for endpoint, state, count in states:
        table.setdefault(endpoint, {})[state] = count
    for endpoint, count, ok, slowest in tried:
        table.setdefault(endpoint, {}).update(attempts=count, ok=ok, slowest_ms=slowest)
    return sorted(table.items())


def dead(session: Session, endpoint: str | None = None) -> list[Any]:
    where = [c.state == "dead"]
    if endpoint:
        where.append(c.endpoint == endpoint)
    return list(session.execute(
        select(c.id, c.message_sid, c.url, c.status, c.attempts, c.last_status_code, c.last_error,
               c.date_updated).where(*where).order_by(c.date_updated.desc()).limit(PAGE)
    ).all())  # fmt: skip


def audit_log(session: Session) -> list[Any]:
    t = audit_table.c
    return list(session.execute(select(audit_table).order_by(t.id.desc()).limit(200)).all())
