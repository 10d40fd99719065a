"""The inbound stage: what handsets sent, from stored parts to inbound Messages and webhooks.

Carriers hand over parts (an SMPP ``deliver_sm``, an HTTP gateway's POST); :func:`store` commits
each before the carrier is answered, dropping a repeat of a part its group already holds. A
group (carrier, From, To, reference, total) is joined by :func:`join_batch` once every part is
there, or with what it has (error 30009) once its first part is ``inbound_reassembly_s`` old.
Joining locks the group's parts, so two workers never make two messages of one group.

Each joined message is a Message with direction ``inbound`` and status ``received`` of the
account that owns the number it was sent to, in the same transaction as:

- its opt-out keyword applied (STOP and the rest opt the sender out of the number, or of the
  Messaging Service the number is in; START and the rest opt it back in), and the automatic
  reply to STOP, START or HELP made (workers/stages/replies.py);
- the webhook owed to the number's SmsUrl (or its service's InboundRequestUrl), a row the
  callbacks stage delivers like a status callback: signed, retried, every attempt recorded.
"""

import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from schemas.db import any_of
from schemas.inbound import inbound_parts_table
from schemas.models import (
    callbacks_table,
    message_events_table,
    messages_table,
    messaging_services_table,
    phone_numbers_table,
    service_numbers_table,
)
from schemas.settings import get_settings
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.metrics import INBOUND, recorder
from workers.pipeline.transitions import API_VERSION, CALLBACKS_OWED
from workers.segmentation import segment
from workers.stages.callbacks import endpoint_of
from workers.twoway import replies
from workers.twoway.optouts import keyword, opt_in, opt_out

log = logging.getLogger(__name__)

BATCH = 200  # groups joined per transaction
MISSING_PARTS = (30009, "Missing segment: the message was received without some of its parts")

p = inbound_parts_table.c
GROUP = (p.carrier, p.from_number, p.to_number, p.reference, p.total, p.key)


@dataclass(frozen=True)
class MoPart:
    """One part of a message a handset sent, as a carrier handed it over."""

    from_number: str
    to_number: str
    text: str
    reference: int = 0
    total: int = 1
    number: int = 1
    media: tuple[str, ...] = ()  # an MMS's media URLs, as an HTTP gateway posts them

    def row(self, carrier: str) -> dict[str, object]:
        """Its inbound_parts row, as it came in on ``carrier``."""
        return {
            "carrier": carrier, "from_number": self.from_number, "to_number": self.to_number,
            "reference": self.reference, "total": self.total, "number": self.number,
            "text": self.text, "key": "" if self.total > 1 else secrets.token_hex(8),
            "media_urls": list(self.media),
        }  # fmt: skip


def store(session: Session, parts: list[dict[str, Any]]) -> None:
    """Commit the parts; a part its open group already holds is dropped, and so is one a group
    joined within the reassembly window held (the carrier sent it again: its answer was lost)."""
    now = utcnow()
    since = now - timedelta(seconds=get_settings().inbound_reassembly_s)
    repeated = _joined_since(session, [part for part in parts if part["total"] > 1], since)
    rows = [{**part, "date_received": now} for part in parts if _part_key(part) not in repeated]
    if not rows:
        session.commit()
        return
    if session.get_bind().dialect.name == "postgresql":
        statement: Any = (
            pg_insert(inbound_parts_table)
            .values(rows)
            .on_conflict_do_nothing(
                index_elements=[column.name for column in (*GROUP, p.number)],
                index_where=p.message_sid.is_(None),
            )
        )
        session.execute(statement)
    else:
        session.execute(insert(inbound_parts_table).prefix_with("OR IGNORE"), rows)
    session.commit()


def _part_key(part: Any) -> tuple[Any, ...]:
    """A part's group, number and text: a row, or a part's dict."""
    get = part.get if isinstance(part, dict) else part._mapping.get
    return (*(get(column.name) for column in GROUP), get("number"), get("text"))


def _joined_since(
    session: Session, parts: list[dict[str, Any]], since: datetime
) -> set[tuple[Any, ...]]:
    """The keys of ``parts`` that a group joined since ``since`` held already."""
    if not parts:
        return set()
    found = session.execute(
        select(*GROUP, p.number, p.text).where(
            p.message_sid.is_not(None),
            p.date_received >= since,
            tuple_(p.from_number, p.to_number, p.reference).in_(
                list({(part["from_number"], part["to_number"], part["reference"])
                      for part in parts})
            ),
        )
    ).all()  # fmt: skip
    return {_part_key(row) for row in found}


def waiting(session: Session) -> bool:
    """Are parts waiting to be joined (complete, or for the rest of their group)?"""
    return session.execute(select(p.id).where(p.message_sid.is_(None)).limit(1)).first() is not None


def join_batch(session: Session) -> int:
    """Join the groups that are complete or too old to wait; returns how many were joined."""
    now = utcnow()
    cutoff = now - timedelta(seconds=get_settings().inbound_reassembly_s)
    ready = session.execute(
        select(*GROUP)
        .where(p.message_sid.is_(None))
        .group_by(*GROUP)
        .having(
            (func.count(func.distinct(p.number)) >= p.total) | (func.min(p.date_received) <= cutoff)
        )
        .order_by(func.min(p.date_received))
        .limit(BATCH)
    ).all()
    if not ready:
        session.commit()
        return 0
    locked = session.execute(
        select(inbound_parts_table)
        .where(p.message_sid.is_(None), tuple_(*GROUP).in_([tuple(group) for group in ready]))
        .order_by(p.id)
        .with_for_update(skip_locked=True)
    ).all()
    groups: dict[tuple[Any, ...], list[Row[Any]]] = defaultdict(list)
    for row in locked:
        groups[tuple(getattr(row, column.name) for column in GROUP)].append(row)
    owners = _owners(session, {rows[0].to_number for rows in groups.values()})
    made = _Made()
    for rows in groups.values():
        complete = len({row.number for row in rows}) >= rows[0].total
        if complete or min(row.date_received for row in rows) <= cutoff:
            _join(made, rows, complete, owners.get(rows[0].to_number), now)
    made.write(session)
    session.commit()
    return made.joined


@dataclass
class _Made:
    """The rows one batch's joins write, one statement per table."""

    joined: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)  # part id → its message's sid
    fetch: bool = False  # an MMS waits for the media stage
    keywords: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # sid, opt, who

    def write(self, session: Session) -> None:
        """Mark the parts first, each only if no join marked it yet, and write the messages
        whose parts this join marked. On Postgres the parts' row locks keep two joins apart;
        SQLite (the embedded default) has no row locks and ignores ``FOR UPDATE SKIP
        LOCKED``, so there two joins may read the same open part: the compare-and-set
        decides, and the loser writes nothing."""
        marked = _mark(session, self.marks)
        lost = {mark["b_sid"] for mark in self.marks if mark["b_id"] not in marked}
        if lost:
            log.info("%d joins given up: another join took their parts first", len(lost))
        for table, rows, key in ((messages_table, self.messages, "sid"),
                                 (message_events_table, self.events, "message_sid"),
                                 (callbacks_table, self.hooks, "message_sid")):  # fmt: skip
            rows = [row for row in rows if row[key] not in lost]
            if rows:
                session.execute(insert(table), rows)
        if self.hooks:
            session.info[CALLBACKS_OWED] = True
        now = utcnow()
        for sid, opt, inbound in self.keywords:
            if sid not in lost:
                _keyword(session, opt, inbound, now)
        for row in self.messages:
            if row["sid"] not in lost:
                recorder.count(INBOUND, outcome="incomplete" if row["error_code"] else "received")
                log.info("%s received from %s (%d parts)", row["sid"], row["from_number"],
                         row["num_segments"], extra={"sid": row["sid"]})  # fmt: skip
        if self.fetch:  # the task wakes the media stage after the commit
            session.info.setdefault(replies.WAKE, set()).add("media")


def _keyword(session: Session, opt: str, inbound: dict[str, Any], now: datetime) -> None:
    """STOP opts the sender out of the number (or its service), START back in; each keyword
    gets its automatic reply."""
    scope = inbound["messaging_service_sid"] or inbound["to"]
    if opt == "STOP":
        opt_out(session, inbound["account_sid"], scope, inbound["from_number"], "keyword", now)
    elif opt == "START":
        opt_in(session, scope, inbound["from_number"])
    replies.keyword_reply(session, inbound, opt, now)


def _mark(session: Session, marks: list[dict[str, Any]]) -> set[int]:
    """Give each part (``b_id``) its message's sid (``b_sid``) where it has none yet; returns
    the ids marked. One statement on Postgres."""
    if not marks:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        found = session.execute(
            text(
                "UPDATE inbound_parts SET message_sid = v.sid"
                " FROM unnest(CAST(:ids AS bigint[]), CAST(:sids AS varchar[])) AS v(id, sid)"
                " WHERE inbound_parts.id = v.id AND inbound_parts.message_sid IS NULL"
                " RETURNING inbound_parts.id"
            ),
            {"ids": [m["b_id"] for m in marks], "sids": [m["b_sid"] for m in marks]},
        ).scalars()
        return set(found)
    marked = set()
    for mark in marks:
        hit = session.execute(
            update(inbound_parts_table)
            .where(p.id == mark["b_id"], p.message_sid.is_(None))
            .values(message_sid=mark["b_sid"]).returning(p.id)
        ).scalar()  # fmt: skip
        if hit is not None:
            marked.add(hit)
    return marked


def _join(
    made: _Made, rows: list[Row[Any]], complete: bool,
    owner: dict[str, Any] | None, now: datetime,
) -> None:  # fmt: skip
    first = rows[0]
    parts = {row.number: row.text for row in rows}  # a repeated part counts once
    body = "".join(parts[number] for number in sorted(parts))
    made.joined += 1
    if owner is None:
        log.warning("a message from %s to %s dropped: %s is no number of an account",
                    first.from_number, first.to_number, first.to_number)  # fmt: skip
        made.marks += [{"b_id": row.id, "b_sid": ""} for row in rows]
        recorder.count(INBOUND, outcome="dropped")
        return
    media = [url for row in rows for url in (row.media_urls or [])]
    sid = ("MM" if media else "SM") + secrets.token_hex(16)
    error = None if complete else MISSING_PARTS
    received = min(row.date_received for row in rows)
    # An MMS is 'receiving' while the media stage fetches its media; its webhook waits for them.
    status = MessageStatus.RECEIVING if media else MessageStatus.RECEIVED
    made.messages.append({
        "sid": sid, "account_sid": owner["account_sid"], "to": first.to_number,
        "from_number": first.from_number, "body": body, "status": status.value,
        "direction": "inbound", "num_segments": first.total, "num_media": len(media),
        "encoding": segment(body).encoding.value, "smart_encoded": False, "media_urls": media,
        "messaging_service_sid": owner["service_sid"], "validity_period_s": 0,
        "expires_at": received, "error_code": error and error[0],
        "error_message": error and error[1], "stage": "media" if media else "done",
        "next_attempt_at": now if media else None,
        "attempts": 0, "throttle_reserved": False, "reconcile": False,
        "date_created": received, "date_updated": now, "date_sent": received,
    })  # fmt: skip
    made.events.append({"message_sid": sid, "status": status.value,
                        "error_code": error and error[0], "date_created": now})  # fmt: skip
    made.marks += [{"b_id": row.id, "b_sid": sid} for row in rows]
    opt = keyword(body)
    if opt is not None:  # applied once the join has its parts (_Made.write)
        who = {
            "account_sid": owner["account_sid"],
            "to": first.to_number,
            "messaging_service_sid": owner["service_sid"],
            "from_number": first.from_number,
        }
        made.keywords.append((sid, opt, who))
    if media:
        made.fetch = True
    else:
        hook = _hook(owner, sid, first.from_number, first.to_number, body, first.total, now)
        if hook is not None:
            made.hooks.append(hook)


def _owners(session: Session, numbers: set[str]) -> dict[str, dict[str, Any]]:
    """Per number, the account that owns it, its webhook, and its service's, if it is in one."""
    n, s, sn = phone_numbers_table.c, messaging_services_table.c, service_numbers_table.c
    found = session.execute(
        select(n.phone_number, n.account_sid, n.sms_url, n.sms_fallback_url,
               s.sid.label("service_sid"), s.inbound_request_url, s.fallback_url,
               s.use_inbound_webhook_on_number)
        .select_from(
            phone_numbers_table
            .outerjoin(service_numbers_table, sn.phone_number == n.phone_number)
            .outerjoin(messaging_services_table, s.sid == sn.service_sid)
        )
        .where(any_of(n.phone_number, numbers))
    ).all()  # fmt: skip
    return {row.phone_number: dict(row._mapping) for row in found}


def _webhook(owner: dict[str, Any]) -> tuple[str | None, str | None]:
    """The webhook and its fallback: a number in a Messaging Service is answered by the
    service's, unless the service says to use the number's."""
    if owner["service_sid"] and not owner["use_inbound_webhook_on_number"]:
        return owner["inbound_request_url"] or None, owner["fallback_url"] or None
    return owner["sms_url"] or None, owner["sms_fallback_url"] or None


def _hook(
    owner: dict[str, Any],
    sid: str,
    from_number: str,
    to: str,
    body: str,
    segments: int,
    now: datetime,
    media: Sequence[tuple[str, str]] = (),
) -> dict[str, Any] | None:
    """The webhook row owed for an inbound message (``media``: its Media resources' URLs and
    types), or None when its number has no webhook."""
    url, fallback = _webhook(owner)
    if not url:
        return None
    opt = keyword(body)
    params = {
        "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid,
        "AccountSid": owner["account_sid"], "From": from_number, "To": to, "Body": body,
        "NumMedia": str(len(media)), "NumSegments": str(segments), "SmsStatus": "received",
        "ApiVersion": API_VERSION,
    }  # fmt: skip
    for n, (media_url, content_type) in enumerate(media):
        params[f"MediaUrl{n}"], params[f"MediaContentType{n}"] = media_url, content_type
    if owner["service_sid"]:
        params["MessagingServiceSid"] = owner["service_sid"]
    if opt is not None:
        params["OptOutType"] = opt
    return {
        "message_sid": sid, "account_sid": owner["account_sid"], "url": url,
        "endpoint": endpoint_of(url), "status": MessageStatus.RECEIVED.value, "params": params,
        "webhook_id": f"{sid}.received", "fallback_url": fallback, "state": "pending",
        "attempts": 0, "next_attempt_at": now, "date_created": now, "date_updated": now,
    }  # fmt: skip


def media_fetched(session: Session, row: Row[Any], media: list[tuple[str, str]]) -> None:
    """An inbound MMS's media are stored (``media``: each one's URL and type; empty when they
    could not be fetched): it is received, and its webhook is owed. The caller commits."""
    owner = _owners(session, {row.to}).get(row.to)
    if owner is None:
        return
    hook = _hook(owner, row.sid, row.from_number, row.to, row.body, row.num_segments, utcnow(),
                 media)  # fmt: skip
    if hook is not None:
        session.execute(insert(callbacks_table).values(hook))
        session.info[CALLBACKS_OWED] = True
