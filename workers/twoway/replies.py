"""Messages sent in answer to an inbound one: what the webhook's TwiML asks for, and the
automatic reply to STOP, START and HELP.

Each is an ordinary outbound message with direction ``outbound-reply``, sent, called back and
listed like any other. It is stored in the transaction that settles its cause (the webhook's
delivery, recorded under its lease; the inbound message's join), so a crash makes it once or
not at all, never twice. What an answer asks for that cannot be sent (bad TwiML, a sender the
account does not own, a recipient who opted out) is recorded on the inbound message: an event
with Twilio's code, and its ``error_code`` if it had none.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from schemas.ids import new_sid
from schemas.inbound import keyword_replies_table
from schemas.models import Message, message_events_table, messages_table, phone_numbers_table
from schemas.phone import to_e164
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.segmentation import segment
from workers.stages.segment import store_new
from workers.twoway.optouts import UNSUBSCRIBED, opted_out
from workers.webhooks import twiml

log = logging.getLogger(__name__)

REPLY = "outbound-reply"
VALIDITY_S = 36000  # Twilio's longest ValidityPeriod, the default
WAKE = "mycpaas.replies_made"  # key of Session.info: the stages new replies start in
# Twilio's default replies (its Advanced Opt-Out texts); a row in keyword_replies overrides one.
DEFAULT_TEXTS = {
    "STOP": "You have successfully been unsubscribed. You will not receive any more messages "
    "from this number. Reply START to resubscribe.",
    "START": "You have successfully been re-subscribed to messages from this number. Reply HELP "
    "for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    "HELP": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}
m = messages_table.c


def keyword_reply(
    session: Session, inbound: dict[str, Any], keyword: str, now: datetime
) -> str | None:
    """Send the automatic reply to ``keyword`` (STOP, START, HELP) the inbound message carried:
    its service's text, else its account's, else Twilio's; none for an empty text. It goes
    even to a sender who has just opted out: it is the confirmation. Returns its sid."""
    k = keyword_replies_table.c
    scopes = [s for s in (inbound["messaging_service_sid"], inbound["account_sid"]) if s]
    found = dict(
        session.execute(
            select(k.scope, k.text).where(k.scope.in_(scopes), k.keyword == keyword)
        ).all()
    )
    text = next((found[s] for s in scopes if s in found), DEFAULT_TEXTS[keyword])
    if not text:
        return None
    reply = _message(inbound, twiml.Reply(text), inbound["from_number"], inbound["to"], now)
    _store(session, [reply])
    return reply.sid


def answered(session: Session, message_sid: str, content_type: str | None, text: str) -> int:
    """Send the replies a webhook's 2xx answer asks for; returns how many were made."""
    inbound = session.execute(
        select(m.sid, m.account_sid, m.to, m.from_number, m.messaging_service_sid, m.error_code)
        .where(m.sid == message_sid)
    ).first()  # fmt: skip
    if inbound is None:  # deleted meanwhile
        return 0
    row = dict(inbound._mapping)
    answer = twiml.read(content_type, text)
    problems, now = list(answer.problems), utcnow()
    replies = []
    for asked in answer.replies:
        to = to_e164(asked.to) if asked.to else row["from_number"]
        from_ = to_e164(asked.from_) if asked.from_ else row["to"]
        if to is None:
            problems.append(twiml.Problem(12200, f"to={asked.to!r} is not a phone number"))
        elif from_ is None or not _owned(session, row["account_sid"], from_):
            problems.append(
                twiml.Problem(12200, f"from={asked.from_!r} is not a number of this account")
            )
        else:
            replies.append(_message(row, asked, to, from_, now))
    refused = opted_out(session, [(r.sid, r.to, r.from_, r.messaging_service_sid) for r in replies])
    for reply in replies:
        if reply.sid in refused:
            problems.append(twiml.Problem(UNSUBSCRIBED, f"{reply.to} opted out of {reply.from_}"))
    sent = [reply for reply in replies if reply.sid not in refused]
    _store(session, sent)
    _record(session, row, problems, now)
    return len(sent)


def _owned(session: Session, account_sid: str, number: str) -> bool:
    n = phone_numbers_table.c
    found = select(n.phone_number).where(n.phone_number == number, n.account_sid == account_sid)
    return session.execute(found).first() is not None


def _message(
    inbound: dict[str, Any], reply: twiml.Reply, to: str, from_: str, now: datetime
) -> Message:
    """The reply to store: from a number in the inbound message's service, in that service."""
    segmented = segment(reply.body)
    service = inbound["messaging_service_sid"] if from_ == inbound["to"] else None
    return Message.model_construct(
        sid=new_sid("MM" if reply.media else "SM"), account_sid=inbound["account_sid"], to=to,
        from_=from_, messaging_service_sid=service, body=reply.body,
        status=MessageStatus.QUEUED.value, direction=REPLY,
        num_segments=1 if reply.media else segmented.num_segments, num_media=len(reply.media),
        encoding=segmented.encoding.value, smart_encoded=False, media_urls=list(reply.media),
        status_callback=reply.status_callback, validity_period_s=VALIDITY_S,
        expires_at=now + timedelta(seconds=VALIDITY_S),
        stage="media" if reply.media else "carrier", next_attempt_at=now,
        date_created=now, date_updated=now,
    )  # fmt: skip


def _store(session: Session, replies: list[Message]) -> None:
    if not replies:
        return
    store_new(session, replies)
    session.info.setdefault(WAKE, set()).update(reply.stage for reply in replies)
    for reply in replies:
        log.info("%s is queued, a reply to %s", reply.sid, reply.to,
                 extra={"sid": reply.sid, "status": reply.status})  # fmt: skip


def _record(
    session: Session, inbound: dict[str, Any], problems: list[twiml.Problem], now: datetime
) -> None:
    """Each problem as an event of the inbound message; the first as its error, if none."""
    if not problems:
        return
    sid = inbound["sid"]
    session.execute(
        message_events_table.insert(),
        [{"message_sid": sid, "status": MessageStatus.RECEIVED.value, "error_code": p.code,
          "date_created": now} for p in problems],
    )  # fmt: skip
    if inbound["error_code"] is None:
        first = problems[0]
        session.execute(
            update(messages_table)
            .where(m.sid == sid, m.error_code.is_(None))
            .values(error_code=first.code, error_message=first.message[:255], date_updated=now)
        )
    for problem in problems:
        log.warning("%s: the webhook's answer: %d %s", sid, problem.code, problem.message,
                    extra={"sid": sid})  # fmt: skip


def to_wake(session: Session) -> set[str]:
    """The stages replies were made for in this session (after its commit: wake them)."""
    stages: set[str] = session.info.pop(WAKE, set())
    return stages
