"""Counters and latency histograms the workers share through the database.

Each process adds to deltas in memory; a background thread adds them to ``metric_counters``
and ``stage_activity`` every few seconds, and once more at shutdown. ``/metrics`` and
``mycpaas queues`` read those tables, so one scrape of the API shows every worker on every
host. A worker killed with -9 loses at most its last few seconds of counts; the work itself
is in the record and untouched.

A histogram is stored as one counter per bucket (not cumulative: each observation lands in the
first bucket it fits) plus ``<name>_sum``; readers make the buckets cumulative.
"""

import logging
import math
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from schemas.db import session_scope
from schemas.models import metric_counters_table, stage_activity_table

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 5.0  # how stale a scrape may be, and what a kill -9 may lose
WINDOW_S = 10  # stage activity is counted per window of this many seconds
KEEP_ACTIVITY_S = 3600  # the sweeper deletes older windows
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                     1800.0, math.inf)  # fmt: skip


@dataclass(frozen=True)
class Family:
    kind: str  # counter | histogram
    help: str
    labels: tuple[str, ...]


STAGE_LATENCY = "mycpaas_stage_latency_seconds"
MESSAGE_LATENCY = "mycpaas_message_latency_seconds"
CARRIER_RESULTS = "mycpaas_carrier_results"
CALLBACK_ATTEMPTS = "mycpaas_callback_attempts"
THROTTLE_WAIT = "mycpaas_throttle_wait_seconds"
STAGE_PROCESSED = "mycpaas_stage_processed"
SETTLE_RESCUES = "mycpaas_settle_rescues"
CALLBACK_RESCUES = "mycpaas_callback_rescues"
SMPP_UNKNOWN_OUTCOMES = "mycpaas_smpp_unknown_outcomes"
BACKGROUND_ERRORS = "mycpaas_background_errors"
INBOUND = "mycpaas_inbound"
RETENTION_REMOVED = "mycpaas_retention_removed"
HTTP_RESPONSES = "mycpaas_http_responses"

FAMILIES = {
    HTTP_RESPONSES: Family(
        "counter", "Answers of the API, by status class: 2xx, 3xx, 4xx or 5xx", ("code",)
    ),
    RETENTION_REMOVED: Family(
        "counter", "Messages removed, with every row that belongs to them, past retention", ()
    ),
    INBOUND: Family(
        "counter",
        "Messages handsets sent, joined from their parts: received, incomplete (30009), or "
        "dropped (to no number of an account)",
        ("outcome",),
    ),
    STAGE_LATENCY: Family(
        "histogram", "From an item becoming due in a stage to the stage finishing it", ("stage",)
    ),
    MESSAGE_LATENCY: Family(
        "histogram", "From acceptance to a message entering a status", ("status",)
    ),
    CARRIER_RESULTS: Family(
        "counter",
        "Segments the carrier answered: accepted, deferred or rejected (with code), by connection",
        ("result", "code", "connection"),
    ),
    CALLBACK_ATTEMPTS: Family(
        "counter",
        "Callback deliveries by outcome: delivered, retry, failed, gone, dead",
        ("outcome",),
    ),
    THROTTLE_WAIT: Family(
        "histogram", "How long messages were held back by their sender's throughput", ()
    ),
    STAGE_PROCESSED: Family("counter", "Items each stage took off its queue", ("stage",)),
    BACKGROUND_ERRORS: Family(
        "counter",
        "Unexpected exceptions in a background loop (logged; the loop went on)",
        ("loop",),
    ),
    SETTLE_RESCUES: Family(
        "counter",
        "Messages the sweeper settled because every segment was final (should stay 0)",
        (),
    ),
    CALLBACK_RESCUES: Family(
        "counter",
        "Callbacks the sweeper made due because the earlier ones of their message had settled "
        "(a process died between the two steps)",
        (),
    ),
    SMPP_UNKNOWN_OUTCOMES: Family(
        "counter",
        "SMPP segments whose submit_sm may have reached the SMSC unanswered, by the policy "
        "applied (resend: possibly sent twice; fail) and cause (lost_response, lost_worker)",
        ("policy", "cause"),
    ),
}

Key = tuple[str, str]  # (stored name, labels)


def encode_labels(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def decode_labels(encoded: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in encoded.split(",")) if encoded else {}


class Recorder:
    """This process's deltas, flushed by a daemon thread (restarted in a forked child)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: defaultdict[Key, float] = defaultdict(float)
        self._activity: Counter[tuple[str, int]] = Counter()
        self._pid = 0

    def count(self, name: str, value: float = 1.0, **labels: object) -> None:
        self._add((name, encode_labels({k: str(v) for k, v in labels.items()})), value)

    def observe(self, name: str, seconds: float, **labels: object) -> None:
        text = {k: str(v) for k, v in labels.items()}
        bound = next(b for b in LATENCY_BUCKETS_S if seconds <= b)
        le = "+Inf" if math.isinf(bound) else repr(bound)
        self._add((f"{name}_bucket", encode_labels({**text, "le": le})), 1)
        self._add((f"{name}_sum", encode_labels(text)), max(0.0, seconds))

    def processed(self, stage: str, items: int) -> None:
        if items <= 0:
            return
        self.count(STAGE_PROCESSED, items, stage=stage)
        window = int(time.time()) // WINDOW_S * WINDOW_S
        with self._lock:
            self._activity[(stage, window)] += items

    def _add(self, key: Key, value: float) -> None:
        with self._lock:
            self._counters[key] += value
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._flush_loop, name="metrics", daemon=True).start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            try:
                self.flush()
            except Exception:  # never silent (workers.supervision cannot watch its own counter)
                log.exception("metrics: unexpected error in the flush loop; carrying on")
                self.count(BACKGROUND_ERRORS, loop="metrics")

    def flush(self) -> None:
        """Add the deltas to the tables; on failure they wait for the next flush."""
        with self._lock:
            counters, self._counters = self._counters, defaultdict(float)
            activity, self._activity = self._activity, Counter()
        if not counters and not activity:
            return
        try:
            with session_scope() as session:
                store(session, counters, activity)
        except Exception as exc:
            log.warning("metrics not flushed (%s); kept for the next flush", exc)
            with self._lock:
                for key, value in counters.items():
                    self._counters[key] += value
                self._activity.update(activity)


def _upsert(session: Session, table: Table, rows: list[dict[str, Any]], add: str) -> None:
    """Insert rows or add to the existing ones; rows in key order so flushers never deadlock."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    keys = [column.name for column in table.primary_key.columns]
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={add: table.c[add] + statement.excluded[add]}
    )
    session.execute(statement, sorted(rows, key=lambda row: [row[k] for k in keys]))


def store(session: Session, counters: dict[Key, float], activity: Counter[tuple[str, int]]) -> None:
    _upsert(session, metric_counters_table,
            [{"name": n, "labels": labels, "value": v} for (n, labels), v in counters.items()],
            "value")  # fmt: skip
    _upsert(session, stage_activity_table,
            [{"stage": s, "window_start": w, "count": n} for (s, w), n in activity.items()],
            "count")  # fmt: skip
    session.commit()


def prune_activity(session: Session) -> None:
    a = stage_activity_table.c
    session.execute(
        delete(stage_activity_table).where(a.window_start < time.time() - KEEP_ACTIVITY_S)
    )
    session.commit()


def read_counters(session: Session) -> dict[Key, float]:
    t = metric_counters_table.c
    return {(name, labels): value for name, labels, value in session.execute(
        select(t.name, t.labels, t.value))}  # fmt: skip


recorder = Recorder()
