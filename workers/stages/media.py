"""The media stage: fetch an MMS's media at send time (or, for one a handset sent, once it
arrives), store it, hand the message on.

A claim moves rows to ``media_fetching`` with a lease; each message's URLs are fetched in
parallel through the SSRF guard within one byte budget and one deadline. Then, fenced by the
lease: media stored and the message to ``segment``; or failed (12300 type, 11751 size, 11200
fetch); or, for transient errors, back to ``media`` after a backoff, until attempts run out.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Row, insert, update
from sqlmodel import Session

from schemas.ids import new_sid
from schemas.models import media_table, messages_table
from schemas.settings import get_settings
from schemas.status import MessageStatus
from schemas.types import utcnow
from workers.metrics import STAGE_LATENCY, recorder
from workers.outbound.fetch import Budget, Fetched, FetchError, TransientFetchError, fetch
from workers.outbound.guard import GuardedTransport
from workers.pipeline.claims import claim_due, m, matching
from workers.pipeline.transitions import move
from workers.stages import inbound

log = logging.getLogger(__name__)

BATCH = 4  # messages per claim: each may fetch ten URLs at once
LEASE_MARGIN_S = 15.0  # per message beyond its fetch deadline: 4 connects of 3 s, storing
MAX_ATTEMPTS = 3  # transient failures before 11200
BACKOFF_BASE_S = 2.0  # 2 s, then 4 s between attempts


class Fetcher:
    """One per worker process: the guarded client and the threads fetching in parallel."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        settings = get_settings()
        self.client = httpx.Client(
            transport=transport or GuardedTransport(),
            timeout=httpx.Timeout(settings.media_read_timeout_s, connect=3.0),
            follow_redirects=False,
            headers={"user-agent": "mycpaas-dispatch/0.1 (media fetch)"},
        )
        self.pool = ThreadPoolExecutor(10, thread_name_prefix="media")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def fetch_all(self, urls: list[str]) -> list[Fetched]:
        """Every URL, in order; the first error (permanent before transient) is raised."""
        settings = get_settings()
        budget = Budget(settings.media_max_bytes)
        deadline = time.monotonic() + settings.media_total_s
        futures = [self.pool.submit(fetch, self.client, url, budget, deadline) for url in urls]
        results: list[Fetched] = []
        errors: list[FetchError] = []
        for future in futures:
            try:
                results.append(future.result())
            except FetchError as exc:
                errors.append(exc)
        if errors:
            permanent = [e for e in errors if not isinstance(e, TransientFetchError)]
            raise (permanent or errors)[0]
        return results


def _fence(lease: datetime) -> dict[str, Any]:
    return {"stage": "media_fetching", "next_attempt_at": lease}


def _store(session: Session, row: Row[Any], fetched: list[Fetched], lease: datetime) -> None:
    """Media stored, and the message handed on: an outbound one to segmentation, an inbound
    one received, its webhook owed with each medium's URL on the API."""
    now = utcnow()
    rows = [
        {"sid": new_sid("ME"), "message_sid": row.sid, "account_sid": row.account_sid,
         "position": n, "source_url": item.url, "content_type": item.content_type,
         "size_bytes": len(item.content), "sha256": item.sha256, "content": item.content,
         "date_created": now}
        for n, item in enumerate(fetched)
    ]  # fmt: skip
    if row.direction == "inbound":
        if move(session, [row.sid], MessageStatus.RECEIVED, now=now, only_if=_fence(lease),
                stage="done", next_attempt_at=None):  # fmt: skip
            session.execute(insert(media_table), rows)
            inbound.media_fetched(session, row, [(_media_url(row, r["sid"]), r["content_type"])
                                                 for r in rows])  # fmt: skip
        session.commit()
        return
    handed_on = session.execute(
        update(messages_table)
        .where(m.sid == row.sid, *matching(_fence(lease)))
        .values(stage="segment", next_attempt_at=now, date_updated=now)
    ).rowcount  # type: ignore[attr-defined]
    if handed_on:
        session.execute(insert(media_table), rows)
    session.commit()


def _media_url(row: Row[Any], media_sid: str) -> str:
    """Where the account fetches a medium (with its credentials), as Twilio's MediaUrl{N}."""
    base = get_settings().public_base_url.rstrip("/")
    return f"{base}/2010-04-01/Accounts/{row.account_sid}/Messages/{row.sid}/Media/{media_sid}"


def _failed(session: Session, row: Row[Any], error: FetchError, lease: datetime) -> bool:
    """Record a failure; returns True when the message will be tried again."""
    now = utcnow()
    attempts = row.attempts + 1
    if isinstance(error, TransientFetchError) and attempts < MAX_ATTEMPTS:
        due = now + timedelta(seconds=BACKOFF_BASE_S * 2 ** (attempts - 1))
        session.execute(
            update(messages_table)
            .where(m.sid == row.sid, *matching(_fence(lease)))
            .values(stage="media", next_attempt_at=due, attempts=attempts, date_updated=now)
        )
        session.commit()
        log.info("media of %s failed (%s); retry %d at %s", row.sid, error, attempts, due,
                 extra={"sid": row.sid})  # fmt: skip
        return True
    if row.direction == "inbound":  # received all the same, its webhook without the media
        if move(session, [row.sid], MessageStatus.RECEIVED, error_code=error.code,
                error_message=str(error)[:500], now=now, only_if=_fence(lease), stage="done",
                next_attempt_at=None):  # fmt: skip
            inbound.media_fetched(session, row, [])
        session.commit()
        log.warning("media of inbound %s could not be fetched: %s", row.sid, error,
                    extra={"sid": row.sid})  # fmt: skip
        return False
    move(session, [row.sid], MessageStatus.FAILED, error_code=error.code,
         error_message=str(error)[:500], now=now, only_if=_fence(lease), stage="done",
         next_attempt_at=None)  # fmt: skip
    session.commit()
    log.warning("media of %s failed for good: %s", row.sid, error, extra={"sid": row.sid})
    return False


def fetch_batch(session: Session, fetcher: Fetcher) -> tuple[int, int, float | None]:
    """Fetch one batch; returns (claimed, handed to segmentation, soonest retry in s)."""
    now = utcnow()
    # The batch's messages are fetched one after another: the lease covers all their deadlines.
    lease = now + timedelta(seconds=BATCH * (get_settings().media_total_s + LEASE_MARGIN_S))
    rows = claim_due(session, "media", now=now, limit=BATCH,
                     sets={"stage": "media_fetching", "next_attempt_at": lease})  # fmt: skip
    session.commit()
    handed_on, retry = 0, None
    for row in rows:
        try:
            fetched = fetcher.fetch_all(list(row.media_urls))
        except FetchError as exc:
            if _failed(session, row, exc, lease):
                retry = BACKOFF_BASE_S
                continue
        else:
            _store(session, row, fetched, lease)
            handed_on += 1
        recorder.observe(STAGE_LATENCY, (utcnow() - row.due_at).total_seconds(), stage="media")
    return len(rows), handed_on, retry


def reclaim(session: Session, now: datetime) -> list[str]:
    """Rows left in ``media_fetching`` by a dead worker go back to ``media``; their sids."""
    sids = list(
        session.execute(
            update(messages_table)
            .where(m.stage == "media_fetching", m.next_attempt_at <= now)
            .values(stage="media", next_attempt_at=now, date_updated=now)
            .returning(m.sid)
        ).scalars()
    )
    session.commit()
    return sids
