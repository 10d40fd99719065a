"""Recipients who texted STOP: a create to one of them from the scope they opted out of
(the number, or the Messaging Service it is in) is refused with Twilio's 21610.

Checked where messages are stored, for a whole batch in one query (the committer's batch of
single creates, a bulk request): a create pays no round trip of its own for it."""

from collections import defaultdict

from sqlalchemy import select
from sqlmodel import Session

from dispatcher.errors import InvalidParameter
from schemas.db import any_of
from schemas.inbound import opt_outs_table
from schemas.models import Message, service_numbers_table

UNSUBSCRIBED = 21610


def opted_out(session: Session, messages: list[Message]) -> dict[str, str]:
    """sid → the scope each refused message's recipient opted out of; the rest may be sent."""
    if not messages:
        return {}
    o, sn = opt_outs_table.c, service_numbers_table.c
    scopes: dict[str, set[str]] = defaultdict(set)
    found = session.execute(
        select(o.phone_number, o.scope).where(any_of(o.phone_number, {m.to for m in messages}))
    )
    for recipient, scope in found:
        scopes[recipient].add(scope)
    if not scopes:
        return {}
    senders = {m.from_ for m in messages if m.to in scopes}
    service_of = dict(
        session.execute(
            select(sn.phone_number, sn.service_sid).where(any_of(sn.phone_number, senders))
        ).all()
    )
    refused = {}
    for message in messages:
        theirs = scopes.get(message.to, set())
        for scope in (message.from_, message.messaging_service_sid, service_of.get(message.from_)):
            if scope is not None and scope in theirs:
                refused[message.sid] = scope
                break
    return refused


def refusal(to: str, scope: str) -> InvalidParameter:
    return InvalidParameter(
        f"Attempt to send to unsubscribed recipient: {to} opted out of messages from {scope}",
        code=UNSUBSCRIBED,
    )
