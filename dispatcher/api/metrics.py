"""``GET /metrics``: the platform in Prometheus' text format.

Gauges are read from the record at scrape time (workers/backlog.py); counters and histograms
are the ones the workers flush to the database (workers/metrics.py). So one scrape of any API
process describes the whole platform, however many workers run and wherever.
"""

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlmodel import Session

from schemas.status import MessageStatus
from schemas.types import utcnow
from workers import backlog, liveness, retention
from workers.app import QUEUES
from workers.carriers import connectivity
from workers.carriers import health as carrier_health
from workers.metrics import FAMILIES, LATENCY_BUCKETS_S, Family, Key, decode_labels, read_counters


def _gauges(session: Session) -> Iterator[Metric]:
    stages = backlog.snapshot(session)
    specs = [
        ("mycpaas_queue_depth", "Items due now and waiting for a worker", "depth"),
        ("mycpaas_queue_oldest_age_seconds", "How long the oldest due item has waited",
         "oldest_s"),
        ("mycpaas_queue_scheduled", "Items due later (retry backoff, sender throttle)",
         "scheduled"),
        ("mycpaas_queue_in_flight", "Items a worker holds under a lease", "in_flight"),
        ("mycpaas_queue_rate_per_second", "Items taken per second over the last minute",
         "rate_per_s"),
    ]  # fmt: skip
    for name, help_text, attribute in specs:
        family = GaugeMetricFamily(name, help_text, labels=["stage", "queue"])
        for stage in stages:
            family.add_metric([stage.stage, stage.queue], getattr(stage, attribute) or 0.0)
        yield family
    statuses = GaugeMetricFamily("mycpaas_messages", "Messages by status", labels=["status"])
    counts = backlog.messages_by_status(session)
    for status in MessageStatus:  # every status, none yet included: dashboards see the series
        statuses.add_metric([status.value], counts.get(status.value, 0))
    yield statuses
    broker = GaugeMetricFamily(
        "mycpaas_broker_queue_messages", "Wake-up calls waiting in the broker", labels=["queue"]
    )
    for queue, count in (backlog.broker_depths() or {}).items():
        broker.add_metric([queue], count)
    yield broker
    refused = GaugeMetricFamily(
        "mycpaas_carrier_credentials_refused",
        "1 while the carrier refuses the platform's credentials (401/403): messages wait",
    )
    refused.add_metric([], 0.0 if carrier_health.current(session) is None else 1.0)
    yield refused
    connected = GaugeMetricFamily(
        "mycpaas_carrier_connected",
        "1 while some worker has the carrier connection up (SMPP bound, HTTP reached), else 0",
        labels=["connection"],
    )
    states = connectivity.current(session)
    down = connectivity.down(states)
    for name in sorted({state.connection for state in states}):
        connected.add_metric([name], 0.0 if name in down else 1.0)
    yield connected
    workers = GaugeMetricFamily(
        "mycpaas_workers", "Worker processes alive, per queue they consume", labels=["queue"]
    )
    alive = liveness.alive(session)
    for queue in QUEUES:  # every queue, none alive included: the alert needs the zero
        workers.add_metric([queue], alive.get(queue, 0))
    yield workers
    oldest = retention.oldest(session)
    age = GaugeMetricFamily(
        "mycpaas_oldest_message_age_seconds",
        "Age of the oldest stored message (0 with none): what retention keeps bounded",
    )
    age.add_metric([], 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds()))
    yield age


def _histogram(name: str, family: Family, stored: dict[Key, float]) -> HistogramMetricFamily:
    buckets: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for (stored_name, encoded), value in stored.items():
        labels = decode_labels(encoded)
        key = tuple(labels.get(label, "") for label in family.labels)
        if stored_name == f"{name}_bucket":
            buckets[key][labels["le"]] = value
        elif stored_name == f"{name}_sum":
            sums[key] = value
    metric = HistogramMetricFamily(name, family.help, labels=list(family.labels))
    bounds = ["+Inf" if b == float("inf") else repr(b) for b in LATENCY_BUCKETS_S]
    for key, counts in sorted(buckets.items()):
        cumulative, total = [], 0.0
        for bound in bounds:
            total += counts.get(bound, 0.0)
            cumulative.append((bound, total))
        metric.add_metric(list(key), cumulative, sums[key])
    return metric


def _counter(name: str, family: Family, stored: dict[Key, float]) -> CounterMetricFamily:
    metric = CounterMetricFamily(name, family.help, labels=list(family.labels))
    for (stored_name, encoded), value in sorted(stored.items()):
        if stored_name == name:
            labels = decode_labels(encoded)
            metric.add_metric([labels.get(label, "") for label in family.labels], value)
    if not family.labels and not metric.samples:  # a counter meant to stay 0 shows its 0
        metric.add_metric([], 0.0)
    return metric


class _Platform(Collector):
    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        yield from _gauges(self.session)
        stored = read_counters(self.session)
        for name, family in FAMILIES.items():
            make = _histogram if family.kind == "histogram" else _counter
            yield make(name, family, stored)


def exposition(session: Session) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Platform(session))
    return generate_latest(registry)
