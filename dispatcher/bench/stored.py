"""``mycpaas bench --stored N``: a scratch store that already holds N settled messages.

Each stored message is what a finished run leaves behind: delivered over 30 days before the
bench, with its segment (carrier id and receipt applied), three status events, and three
callbacks delivered at the first attempt, each with its attempt. They belong to an account
of their own, so the bench's own account reads only its messages, while every claim, receipt
lookup and sweep of the pipeline runs against the full tables. Rows are generated inside
Postgres (``generate_series``), then vacuumed and analysed as a long-running store would be.
"""

import time

import click
import psycopg

from dispatcher.bench.platform import postgres_store
from dispatcher.intake.accounts import create_account
from schemas.db import session_scope

STATUSES = ("sending", "sent", "delivered")  # the events and callbacks of each message

# Message i of count was created 30 days × (1 - i/count) before now, sent a second and delivered
# three seconds after that.
_MESSAGES = """
INSERT INTO messages (sid, account_sid, "to", from_number, body, status, direction,
    num_segments, num_media, encoding, smart_encoded, media_urls, status_callback,
    validity_period_s, expires_at, stage, next_attempt_at, attempts, throttle_reserved,
    reconcile, date_created, date_updated, date_sent)
SELECT 'SM' || md5('stored' || i), %(account)s, '+1202555' || lpad((i %% 10000)::text, 4, '0'),
    '+15005550006', 'stored message ' || i, 'delivered', 'outbound-api', 1, 0, 'GSM-7', false,
    '[]', 'http://127.0.0.1:9/status', 36000, created + interval '10 hours', 'done', NULL, 0,
    false, false, created, created + interval '3 seconds', created + interval '1 second'
FROM (SELECT i, now() - interval '30 days' * (1 - i::float8 / %(count)s) AS created
      FROM generate_series(1, %(count)s) AS i) AS stored
"""
_SEGMENTS = """
INSERT INTO segments (message_sid, number, total, text, udh_ref, carrier_id, status,
    date_submitted, date_updated)
SELECT sid, 1, 1, body, 0, 'stored-' || sid, 'delivered', date_sent, date_updated
FROM messages WHERE account_sid = %(account)s
"""
_RECEIPTS = """
INSERT INTO receipts (carrier_id, reference, status, done_date, date_received, applied_at)
SELECT 'stored-' || sid, sid || '-1', 'delivered', to_char(date_updated, 'YYMMDDHH24MI'),
    date_updated, date_updated
FROM messages WHERE account_sid = %(account)s
"""
_EVENTS = """
INSERT INTO message_events (message_sid, status, date_created)
SELECT m.sid, e.status, m.date_created + interval '1 second' * k
FROM messages AS m, unnest(%(statuses)s::text[]) WITH ORDINALITY AS e(status, k)
WHERE m.account_sid = %(account)s
"""
_CALLBACKS = """
INSERT INTO callbacks (message_sid, account_sid, url, endpoint, status, params, webhook_id,
    state, attempts, next_attempt_at, last_status_code, date_created, date_updated)
SELECT m.sid, m.account_sid, m.status_callback, 'http://127.0.0.1:9', e.status,
    json_build_object('MessageSid', m.sid, 'MessageStatus', e.status), md5(m.sid || e.status),
    'delivered', 1, NULL, 204, m.date_created + interval '1 second' * k,
    m.date_created + interval '1 second' * k
FROM messages AS m, unnest(%(statuses)s::text[]) WITH ORDINALITY AS e(status, k)
WHERE m.account_sid = %(account)s
"""
_ATTEMPTS = """
INSERT INTO callback_attempts (callback_id, url, date_attempted, status_code, latency_ms)
SELECT id, url, date_updated, 204, 2.5 FROM callbacks WHERE account_sid = %(account)s
"""
_TABLES = ("messages", "segments", "receipts", "message_events", "callbacks", "callback_attempts")


def fill_store(count: int) -> None:
    """Add ``count`` settled messages (and what each leaves behind) to the scratch store."""
    dsn = postgres_store()
    if dsn is None:
        raise click.ClickException("--stored needs a Postgres store (MYCPAAS_DATABASE_URL)")
    with session_scope() as session:
        account, _ = create_account(session, "stored")
    started = time.monotonic()
    click.echo(f"stored: adding {count:,} settled messages to the scratch store ...")
    params = {"account": account.sid, "count": count, "statuses": list(STATUSES)}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        for statement in (_MESSAGES, _SEGMENTS, _RECEIPTS, _EVENTS, _CALLBACKS, _ATTEMPTS):
            conn.execute(statement, params)  # type: ignore[arg-type]
        for table in _TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")
    click.echo(f"stored: {count:,} messages in {time.monotonic() - started:.0f} s")
