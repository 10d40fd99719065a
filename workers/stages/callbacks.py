"""Status callbacks in the record: what is owed, claiming it, keeping each message's in order.

Per message, statuses arrive in order: at most one callback of a message is pending or being
delivered. One owed while an earlier one of its message is still open is written ``held`` (not
due, outside the claim's index) and :func:`promote` makes it due once the earlier one settles.
Both sides act after their own commit, so whichever commits last sees the other's row: see
:func:`workers.pipeline.transitions.after_commit` and
:func:`workers.webhooks.outcomes.record`; the sweeper promotes what
a crash between the two left held. A claim skips endpoints the caller names (busy or broken
ones, see workers/webhooks/delivery.py), so a callback waits in the database, due, until its
endpoint has room: a busy endpoint costs no write.
What a delivery came to is recorded by workers/webhooks/outcomes.py.
"""

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any
from urllib.parse import urlsplit

from psycopg import sql
from sqlalchemy import (
    ColumnElement,
    Row,
    bindparam,
    case,
    exists,
    func,
    select,
    tuple_,
    update,
)  # fmt: skip
from sqlalchemy.orm import aliased
from sqlmodel import Session

from schemas.copying import VALUES_MAX, execute, flat_values, insert_rows, values_list
from schemas.credentials import auth_token, webhook_secret
from schemas.db import any_bound, any_of, constant, kept
from schemas.models import accounts_table, callbacks_table
from schemas.settings import get_settings
from schemas.types import utcnow
from workers.metrics import CALLBACK_RESCUES, recorder
from workers.pipeline.claims import claim_rows
from workers.webhooks.signing import strip_fragment

log = logging.getLogger(__name__)

ENDPOINT_CHARS = 300  # callbacks.endpoint's width; longer only with an absurd userinfo
GONE_REASON = "an earlier callback to this URL was answered 410 Gone"

c = callbacks_table.c
PENDING, DELIVERING = "pending", "delivering"
HELD = "held"  # behind an earlier callback of its message that is still open; not due
OPEN_STATES = (PENDING, DELIVERING, HELD)
STRANDED_AFTER = timedelta(seconds=2)  # a held callback the sweeper may promote, at the earliest
STRANDED_BATCH = 1000  # messages one sweep looks at for them


def endpoint_of(url: str) -> str:
    """``scheme://host:port`` of a callback URL: what one endpoint's limits and breaker cover."""
    parts = urlsplit(strip_fragment(url))
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"[:ENDPOINT_CHARS]


def _per_message() -> Any:
    """Per message of the list ``w_sids``: its first held callback and whether one is pending
    or being delivered. Read through the message index alone: a plan that also consulted the
    states' index (stale statistics on a young table) scanned every open callback once per
    message."""
    return (
        select(
            c.message_sid,
            func.min(c.id).filter(c.state == HELD).label("first_held"),
            func.max(case((c.state.in_((PENDING, DELIVERING)), 1), else_=0)).label("busy"),
        )
        .where(any_bound(c.message_sid, "w_sids"))
        .group_by(c.message_sid)
        .subquery()
    )


def _open_statement() -> Any:
    each = _per_message()
    return select(each.c.message_sid).where((each.c.busy == 1) | each.c.first_held.is_not(None))


def _free_statement() -> Any:
    each = _per_message()
    return select(each.c.first_held).where(each.c.first_held.is_not(None), each.c.busy == 0)


def _promote_statement(state: str, skip: bool = False) -> Any:
    """Held callbacks by id to ``state``: ``pending`` (due at ``v_due``; returns their ids,
    messages, statuses and state), or ``delivering`` under the lease ``v_due`` (the caller's claim,
    returned whole), those to the endpoints ``w_skip`` left held when ``skip``."""
    whole = state == DELIVERING
    returned = (*callbacks_table.c, gone()) if whole else (c.id, c.message_sid, c.status, c.state)
    where = [any_bound(c.id, "w_ids"), c.state == HELD]
    if skip:
        where.append(~any_bound(c.endpoint, "w_skip"))
    return (
        update(callbacks_table)
        .where(*where)
        .values(state=state, next_attempt_at=bindparam("v_due"),
                date_updated=bindparam("v_date_updated"))
        .returning(*returned)
    )  # fmt: skip


def open_for(session: Session, message_sids: Collection[str]) -> set[str]:
    """Those of ``message_sids`` with a callback not yet settled (a new one waits behind it)."""
    statement = kept("callbacks.open_for", _open_statement)
    return set(session.execute(statement, {"w_sids": list(message_sids)}).scalars())


def write_owed(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Add the owed callbacks ``rows`` (built due at their ``date_created``), each written
    ``held`` instead where its message has one open (the messages' rows are locked by the
    caller's move, so no other callback of them is written meanwhile). Returns the messages
    whose callback was held. A few rows on Postgres: one statement that reads and writes."""
    if session.get_bind().dialect.name != "postgresql" or len(rows) > VALUES_MAX:
        behind = open_for(session, [row["message_sid"] for row in rows])
        insert_rows(session, callbacks_table, [
            {**row, "state": HELD, "next_attempt_at": None} if row["message_sid"] in behind
            else row
            for row in rows
        ])  # fmt: skip
        return behind
    columns = tuple(name for name in rows[0] if name not in ("state", "next_attempt_at"))
    written = execute(session, _owed_statement(columns, len(rows)),
                      flat_values(callbacks_table, columns, rows), "INSERT callbacks")  # fmt: skip
    return {sid for sid, state in written if state == HELD}


@lru_cache(maxsize=64)
def _owed_statement(columns: tuple[str, ...], count: int) -> bytes:
    """:func:`write_owed`'s statement. The open check reads the message index alone (a
    ``coalesce`` keeps the states' partial index out, as in :func:`promote_stranded`)."""
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    picked = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(name)) for name in columns)
    return (
        sql.SQL(
            "INSERT INTO callbacks ({names}, state, next_attempt_at) "
            "SELECT {picked}, CASE WHEN o.open THEN 'held' ELSE 'pending' END, "
            "CASE WHEN o.open THEN NULL ELSE r.date_created END "
            "FROM (VALUES {rows}) AS r ({names}) CROSS JOIN LATERAL (SELECT EXISTS ("
            "SELECT 1 FROM callbacks x WHERE x.message_sid = r.message_sid "
            "AND coalesce(x.state, '') IN ('pending', 'delivering', 'held')) AS open) AS o "
            "RETURNING message_sid, state"
        )
        .format(names=names, picked=picked, rows=values_list(len(columns), count))
        .as_bytes()
    )


def promote(session: Session, message_sids: Collection[str]) -> list[str]:
    """Make each message's first held callback due where none of its callbacks is pending or
    being delivered; commits. Two promotes of one message pick the same row: one of them
    moves it. Returns the messages whose callback was promoted."""
    return [row.message_sid for row in promote_claiming(session, message_sids, 0)]


def promote_claiming(
    session: Session, message_sids: Collection[str], room: int, skip_endpoints: Collection[str] = ()
) -> list[Row[Any]]:
    """As :func:`promote`, but up to ``room`` of the promoted callbacks are claimed at once for
    the caller (``delivering`` under a lease, as :func:`claim` gives them; none to
    ``skip_endpoints``), the rest made due: a worker that settled a message's callback
    delivers its next one with no claim between. Commits. Returns the promoted rows; the
    claimed ones are those ``delivering``."""
    if not message_sids:
        return []
    free = session.execute(
        kept("callbacks.free", _free_statement), {"w_sids": list(message_sids)}
    ).scalars()
    # Updated by id, in a statement of its own: as one statement with the read above as its
    # subquery, the planner may start from the states' index (every held row, and each dead
    # version of one) and did: 40-700 ms a call with a million messages stored.
    ids = list(free)
    now = utcnow()
    rows: list[Row[Any]] = []
    skip = sorted(skip_endpoints)
    if ids and room > 0:
        lease = now + timedelta(seconds=get_settings().callback_lease_s)
        claimed = session.execute(
            kept(("callbacks.promote", DELIVERING, bool(skip)),
                 partial(_promote_statement, DELIVERING, bool(skip))),
            {"w_ids": ids[:room], "w_skip": skip, "v_due": lease, "v_date_updated": now},
        )  # fmt: skip
        rows += claimed.all()
        taken = {row.id for row in rows}
        ids = [id_ for id_ in ids if id_ not in taken]
    if ids:
        due = session.execute(
            kept(("callbacks.promote", PENDING), partial(_promote_statement, PENDING)),
            {"w_ids": ids, "v_due": now, "v_date_updated": now},
        )
        rows += due.all()
    session.commit()
    return rows


def promote_stranded(session: Session) -> list[str]:
    """Sweeper's net: held callbacks whose message has none open any more (a process died
    between committing a settled callback, or a held one, and promoting). Counted."""
    held_before = utcnow() - STRANDED_AFTER
    # Only those with nothing out: during an endpoint's outage thousands of messages hold
    # callbacks behind a retrying one, and they must not fill the batch. coalesce() keeps the
    # states' index out of the per-row check (see promote), leaving the message index.
    o = aliased(callbacks_table)
    busy = exists().where(
        o.c.message_sid == c.message_sid,
        func.coalesce(o.c.state, "").in_((PENDING, DELIVERING)),
    )
    stale = session.execute(
        select(c.message_sid)
        .where(c.state == HELD, c.date_updated < held_before, ~busy)
        .group_by(c.message_sid)
        .order_by(func.min(c.date_updated))
        .limit(STRANDED_BATCH)
    ).scalars()
    rescued = promote(session, list(stale))
    for sid in rescued:
        recorder.count(CALLBACK_RESCUES)
        log.warning("%s had a callback held behind settled ones; the sweeper let it go", sid,
                    extra={"sid": sid})  # fmt: skip
    return rescued


def claim(
    session: Session, limit: int, skip_endpoints: Collection[str] = (), *, commit: bool = True
) -> list[Row[Any]]:
    """Due callbacks, as ``delivering`` under a lease (``next_attempt_at``): the lease fences
    what this delivery may record. A message has at most one callback pending or delivering
    (the rest are held), so any due one may go. Callbacks to ``skip_endpoints`` stay pending
    (due) for a claim that has room for them. Committed, unless ``commit`` is False (the
    caller commits)."""
    now = utcnow()
    skip = sorted(skip_endpoints)

    def where() -> list[ColumnElement[bool]]:
        due = [c.state == constant(PENDING), c.next_attempt_at <= bindparam("w_now")]
        return [*due, ~any_bound(c.endpoint, "w_skip")] if skip else due

    lease = now + timedelta(seconds=get_settings().callback_lease_s)
    sets = {"state": DELIVERING, "next_attempt_at": lease, "date_updated": now}
    rows = claim_rows(session, callbacks_table, key=("callbacks", bool(skip)),
                      due=c.next_attempt_at, where=where, still=lambda: c.state == PENDING,
                      limit=limit, sets=sets, params={"w_now": now, "w_skip": skip},
                      extra=lambda: (gone(),))  # fmt: skip
    if commit:
        session.commit()
    return rows


def renew(session: Session, held: dict[int, datetime], lease: datetime) -> set[int]:
    """Move the leases of claimed callbacks (id → current lease) to ``lease``; returns the ids
    still held (a lease the sweeper already took back is not renewed)."""
    if not held:
        return set()
    renewed = session.execute(
        update(callbacks_table)
        .where(c.state == DELIVERING, tuple_(c.id, c.next_attempt_at).in_(list(held.items())))
        .values(next_attempt_at=lease)
        .returning(c.id)
    ).scalars()
    ids = set(renewed)
    session.commit()
    return ids


def release(session: Session, held: dict[int, datetime]) -> int:
    """Give claimed callbacks (id → lease) back, due now, for any worker: no attempt counted."""
    if not held:
        return 0
    now = utcnow()
    released = session.execute(
        update(callbacks_table)
        .where(c.state == DELIVERING, tuple_(c.id, c.next_attempt_at).in_(list(held.items())))
        .values(state=PENDING, next_attempt_at=now, date_updated=now)
        .returning(c.id)
    ).all()
    session.commit()
    return len(released)


def credentials(session: Session, account_sids: set[str]) -> dict[str, tuple[str, str]]:
    """(auth token, webhook secret) per account, re-derived from the secret key."""
    a = accounts_table.c
    salts = session.execute(select(a.sid, a.token_salt).where(any_of(a.sid, account_sids))).all()
    return {sid: (auth_token(sid, salt), webhook_secret(sid, salt)) for sid, salt in salts}


def gone() -> ColumnElement[bool]:
    """For a callback claimed (``RETURNING``): did its URL answer 410 for its message? (A
    message's later callbacks are claimed only once the 410 is committed: the claim sees it.)"""
    g = aliased(callbacks_table)
    return (
        exists()
        .where(g.c.message_sid == c.message_sid, g.c.url == c.url, g.c.state == constant("gone"))
        .correlate(callbacks_table)
        .label("gone")
    )


def skip_gone(session: Session, rows: list[Row[Any]]) -> list[Row[Any]]:
    """Skip claimed callbacks to a URL that answered 410 for their message (``gone``, read by
    the claim); returns the rest, to be delivered."""
    skipped = [row.id for row in rows if row.gone]
    if skipped:
        session.execute(
            update(callbacks_table)
            .where(any_of(c.id, skipped), c.state == DELIVERING)
            .values(state="skipped", last_error=GONE_REASON, next_attempt_at=None,
                    date_updated=utcnow())
        )  # fmt: skip
        session.commit()
        promote(session, {row.message_sid for row in rows if row.id in skipped})
    return [row for row in rows if row.id not in skipped]


def release_lost(session: Session) -> int:
    """Callbacks whose delivering worker died (lease over) are due again; same webhook-id."""
    now = utcnow()
    released = session.execute(
        update(callbacks_table)
        .where(c.state == constant(DELIVERING), c.next_attempt_at <= now)
        .values(state=PENDING, next_attempt_at=now, date_updated=now)
        .returning(c.id)
    ).all()
    session.commit()
    return len(released)


def due(session: Session) -> bool:
    now = utcnow()
    statement = select(c.id).where(c.state == constant(PENDING), c.next_attempt_at <= now).limit(1)
    return session.execute(statement).first() is not None


SETTLED = ("delivered", "failed", "gone", "skipped", "dead")


def replay(
    session: Session,
    *,
    message_sid: str | None = None,
    since: datetime | None = None,
    states: tuple[str, ...] = SETTLED,
) -> int:
    """Deliver settled callbacks again (same webhook-id, so receivers can tell), each message's
    in their order: they are held, and the first of each message made due when none of its
    callbacks is still out."""
    now = utcnow()
    conditions: list[ColumnElement[bool]] = [c.state.in_(states)]
    if message_sid is not None:
        conditions.append(c.message_sid == message_sid)
    if since is not None:
        conditions.append(c.date_created >= since)
    replayed = session.execute(
        update(callbacks_table)
        .where(*conditions)
        .values(state=HELD, attempts=0, next_attempt_at=None, date_updated=now)
        .returning(c.message_sid)
    ).scalars()
    sids = list(replayed)
    session.commit()
    promote(session, set(sids))
    return len(sids)
