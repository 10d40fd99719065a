"""Who may not be texted: handsets that sent STOP, from the number or Messaging Service they
sent it to, until they send START. Read where messages are stored (intake's batches, a scheduled
message's release, a TwiML reply), written by the inbound stage and the operator's CLI."""

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from schemas.db import any_bound, any_of, kept
from schemas.inbound import opt_outs_table
from schemas.models import service_numbers_table

UNSUBSCRIBED = 21610  # a message to a recipient who opted out of its sender

# Twilio's default keywords: the whole body, trimmed, in any case.
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})


def keyword(body: str) -> str | None:
    """The OptOutType a body carries (STOP, START, HELP), or None."""
    word = body.strip().upper()
    if word in OPT_OUT:
        return "STOP"
    if word in OPT_IN:
        return "START"
    if word in HELP:
        return "HELP"
    return None


def _found_statement() -> Any:
    o = opt_outs_table.c
    return select(o.phone_number, o.scope).where(any_bound(o.phone_number, "w_to"))


def opted_out(session: Session, sends: list[tuple[str, str, str, str | None]]) -> dict[str, str]:
    """Of messages about to go, (sid, To, From, Messaging Service): sid → the scope the
    recipient of each that may not go opted out of. One query when nobody opted out."""
    if not sends:
        return {}
    sn = service_numbers_table.c
    scopes: dict[str, set[str]] = defaultdict(set)
    recipients = list({to for _, to, _, _ in sends})
    found = session.execute(kept("optouts.found", _found_statement), {"w_to": recipients})
    for recipient, scope in found:
        scopes[recipient].add(scope)
    if not scopes:
        return {}
    senders = {from_ for _, to, from_, _ in sends if to in scopes}
    service_of = dict(
        session.execute(
            select(sn.phone_number, sn.service_sid).where(any_of(sn.phone_number, senders))
        ).all()
    )
    refused = {}
    for sid, to, from_, service in sends:
        theirs = scopes.get(to, set())
        for scope in (from_, service, service_of.get(from_)):
            if scope is not None and scope in theirs:
                refused[sid] = scope
                break
    return refused


def opt_out(
    session: Session, account_sid: str, scope: str, number: str, source: str, now: datetime
) -> None:
    """Nothing more goes to ``number`` from ``scope`` (a number, or a service's sid)."""
    row = {"scope": scope, "phone_number": number, "account_sid": account_sid, "source": source,
           "date_created": now}  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":
        session.execute(pg_insert(opt_outs_table).values(row).on_conflict_do_nothing())
    else:
        session.execute(insert(opt_outs_table).prefix_with("OR IGNORE").values(row))


def opt_in(session: Session, scope: str, number: str) -> None:
    o = opt_outs_table.c
    session.execute(opt_outs_table.delete().where(o.scope == scope, o.phone_number == number))
