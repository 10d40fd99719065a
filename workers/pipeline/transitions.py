"""Every status change goes through :func:`move`: the transition table, the event and the
status callback, in one transaction.

``move`` changes many messages at once (the pipeline works in batches) and only those whose
current status may legally move to the new one, so a late or repeated change is a no-op.
"""

import logging
from collections.abc import Collection, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import ClauseElement, Row, bindparam, func, insert, select, update
from sqlmodel import Session

from schemas.copying import insert_rows
from schemas.db import any_bound, kept
from schemas.models import message_events_table, messages_table
from schemas.status import TRANSITIONS, MessageStatus
from schemas.types import utcnow
from workers.metrics import MESSAGE_LATENCY, recorder
from workers.stages.callbacks import PENDING, endpoint_of, promote, write_owed

log = logging.getLogger(__name__)

CALLBACKS_OWED = "mycpaas.callbacks_owed"  # keys of Session.info: callbacks were written,
HELD_BEHIND = "mycpaas.callbacks_held"  # and the messages whose new callback waits held
API_VERSION = "2010-04-01"  # what Twilio's callbacks carry as ApiVersion

EMPTY: Mapping[str, Any] = MappingProxyType({})

# For each status, the statuses a message may be in to move to it.
_SOURCES = {
    target: [source.value for source, targets in TRANSITIONS.items() if target in targets]
    for target in MessageStatus
}


def move(
    session: Session,
    sids: Collection[str],
    status: MessageStatus,
    *,
    error_code: int | None = None,
    error_message: str | None = None,
    now: datetime | None = None,
    only_if: Mapping[str, Any] = EMPTY,
    **values: Any,
) -> list[str]:
    """Move ``sids`` to ``status`` where allowed; returns the sids that moved.

    ``values`` are further columns to set on the moved rows (stage, date_sent, …); ``only_if``
    further columns the rows must hold, by name (a stage's lease, say). A failure must carry
    its code and message.
    """
    if not sids:
        return []
    if status is MessageStatus.FAILED and (error_code is None or not error_message):
        raise ValueError("a failed message carries error_code and error_message")
    now = now or utcnow()
    # A value given as an SQL expression (a CASE, say) is part of the statement: built anew.
    inline = {name: value for name, value in values.items() if isinstance(value, ClauseElement)}
    values = {name: value for name, value in values.items() if name not in inline}
    conditions, columns = tuple(only_if), tuple(values)
    # On Postgres the events are written by the same statement (one round trip less a move).
    recorded = session.get_bind().dialect.name == "postgresql"
    statement = (
        _move_statement(conditions, columns, inline, recorded)
        if inline
        else kept(("move", conditions, columns, recorded),
                  lambda: _move_statement(conditions, columns, recorded=recorded))
    )  # fmt: skip
    parameters = {
        "w_sids": list(sids),
        "w_sources": _SOURCES[status],
        "v_status": status.value,
        "v_date_updated": now,
        "v_error_code": error_code,
        "v_error_message": error_message,
        **{f"w_{name}": value for name, value in only_if.items()},
        **{f"v_{name}": value for name, value in values.items()},
    }
    moved = session.execute(statement, parameters).all()
    for row in moved:
        # From acceptance, or from its SendAt for a scheduled message: the wait asked for is
        # not latency.
        recorder.observe(MESSAGE_LATENCY, (now - row.accepted).total_seconds(), status=status)
    _log_moved([row.sid for row in moved], status, error_code)
    if moved and not recorded:
        insert_rows(session, message_events_table, [
            {"message_sid": row.sid, "status": status.value, "error_code": error_code,
             "date_created": now}
            for row in moved
        ])  # fmt: skip
    if moved:
        calling = [row for row in moved if row.status_callback]
        if calling:
            # The message rows are locked: no other move of them runs until this one commits.
            rows = [callback_row(row, status, error_code, error_message, now) for row in calling]
            behind = write_owed(session, rows)
            session.info[CALLBACKS_OWED] = True
            if behind:
                session.info.setdefault(HELD_BEHIND, set()).update(behind)
    return [row.sid for row in moved]


def _log_moved(sids: list[str], status: MessageStatus, error_code: int | None) -> None:
    """One line per batch, not per message: at INFO a line each was a twelfth of a message's
    CPU at 100/s. Every sid is on it (``sids`` in JSON), so a search by sid still finds it."""
    if not sids or not log.isEnabledFor(logging.INFO):
        return
    fields = {"status": str(status), "error_code": error_code}
    if len(sids) == 1:
        log.info("%s is %s", sids[0], status, extra={"sid": sids[0], **fields})
    else:
        log.info("%d messages are %s: %s", len(sids), status, " ".join(sids),
                 extra={"sids": sids, **fields})  # fmt: skip


def _move_statement(
    conditions: tuple[str, ...], columns: tuple[str, ...], inline: Mapping[str, Any] = EMPTY,
    recorded: bool = False,
) -> Any:  # fmt: skip
    """:func:`move`'s UPDATE, what changes bound: ``w_`` conditions, ``v_`` values. ``recorded``:
    as a CTE whose statement also inserts each moved row's event (Postgres)."""
    m = messages_table.c
    sets: dict[str, Any] = {
        name: bindparam(f"v_{name}")
        for name in ("status", "date_updated", "error_code", "error_message", *columns)
    }
    moving = (
        update(messages_table)
        .where(any_bound(m.sid, "w_sids"), any_bound(m.status, "w_sources"),
               *(m[name] == bindparam(f"w_{name}") for name in conditions))
        .values({**sets, **inline})
        .returning(m.sid, m.account_sid, m.status_callback, m.from_number, m.to,
                   func.coalesce(m.send_at, m.date_created).label("accepted"))
    )  # fmt: skip
    if not recorded:
        return moving
    moved = moving.cte("moved")
    e = message_events_table.c
    events = insert(message_events_table).from_select(
        [e.message_sid, e.status, e.error_code, e.date_created],
        select(moved.c.sid, sets["status"], sets["error_code"], sets["date_updated"]),
    )
    return select(moved).add_cte(events.cte("events"))


def after_commit(session: Session) -> bool:
    """Once the batch that moved messages has committed: a callback written held behind one
    that settled meanwhile is made due (the settling side may not have seen it), and the
    answer says whether callbacks were written (then wake the callbacks stage)."""
    behind = session.info.pop(HELD_BEHIND, None)
    if behind:
        promote(session, behind)
    return bool(session.info.pop(CALLBACKS_OWED, False))


def callback_row(
    message: Row[Any],
    status: MessageStatus,
    error_code: int | None,
    error_message: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The callback owed for ``message`` entering ``status``, with Twilio's parameters, due
    now (written held instead behind an earlier one still open: ``callbacks.write_owed``)."""
    params = {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "MessageStatus": status.value,
        "SmsStatus": status.value,
        "AccountSid": message.account_sid,
        "From": message.from_number,
        "To": message.to,
        "ApiVersion": API_VERSION,
    }
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
        params["ErrorMessage"] = error_message or ""
    return {
        "message_sid": message.sid,
        "account_sid": message.account_sid,
        "url": message.status_callback,
        "endpoint": endpoint_of(message.status_callback),
        "status": status.value,
        "params": params,
        # Each status is entered once, so this names the event across retries and replays.
        "webhook_id": f"{message.sid}.{status.value}",
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "date_created": now,
        "date_updated": now,
    }
