"""Prometheus metrics read from the database at scrape time.

The API, every worker and beat share one database, so a collector that reads it gives the same
numbers whichever process is scraped — no per-process counters that reset on restart.

A scrape costs a few indexed reads, whatever the history: attempts are counted as they end
(`attempt_counters`, kept by `publisher.delivery.attempts`), deliveries per state come from
the `(channel_kind, state)` index, and the queue lag reads only due deliveries (the
`(state, next_attempt_at)` index).

- `publisher_deliveries{state,channel}`: deliveries per state (gauge)
- `publisher_attempts_total{channel,outcome}`: every attempt ended, retries included
- `publisher_attempt_duration_seconds{channel}`: finished attempts' durations (histogram)
- `publisher_queue_lag_seconds{channel}`: age of the oldest due delivery no worker has taken
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from channels.registry import KINDS
from publisher.db import Database
from publisher.delivery.attempts import DURATION_BUCKETS, NO_DURATION, bucket_label
from publisher.delivery.claims import is_due
from publisher.models import AttemptCounter, Delivery, DeliveryState, utcnow
from publisher.services.queries import counts_by_state

LABELS = [*(bucket_label(bound) for bound in DURATION_BUCKETS), "+Inf"]


class DatabaseCollector(Collector):
    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        with self.database.session() as session:
            counters = session.scalars(select(AttemptCounter)).all()
            yield self._deliveries(session)
            yield self._attempts(counters)
            yield self._durations(counters)
            yield self._queue_lag(session)

    def _deliveries(self, session: Session) -> Metric:
        metric = GaugeMetricFamily(
            "publisher_deliveries", "Deliveries by state and channel", labels=["state", "channel"]
        )
        for kind, states in sorted(counts_by_state(session).items()):
            for state in DeliveryState:
                metric.add_metric([state.value, kind], states.get(state.value, 0))
        return metric

    def _attempts(self, counters: Sequence[AttemptCounter]) -> Metric:
        metric = CounterMetricFamily(
            "publisher_attempts",
            "Calls made to channels, retries included, by outcome (counted when they end)",
            labels=["channel", "outcome"],
        )
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for counter in counters:
            totals[(counter.channel_kind, counter.outcome)] += counter.attempts
        for (kind, outcome), n in sorted(totals.items()):
            metric.add_metric([kind, outcome], n)
        return metric

    def _durations(self, counters: Sequence[AttemptCounter]) -> Metric:
        metric = HistogramMetricFamily(
            "publisher_attempt_duration_seconds",
            "Duration of finished calls to channels",
            labels=["channel"],
        )
        per_bucket: dict[str, list[int]] = defaultdict(lambda: [0] * len(LABELS))
        total_ms: dict[str, int] = defaultdict(int)
        for counter in counters:
            if counter.le == NO_DURATION:
                continue
            per_bucket[counter.channel_kind][_bucket_index(counter.le)] += counter.attempts
            total_ms[counter.channel_kind] += counter.duration_ms
        for kind, counts in sorted(per_bucket.items()):
            buckets = [
                (label, float(n)) for label, n in zip(LABELS, accumulate(counts), strict=True)
            ]
            metric.add_metric([kind], buckets, total_ms[kind] / 1000)
        return metric

    def _queue_lag(self, session: Session) -> Metric:
        metric = GaugeMetricFamily(
            "publisher_queue_lag_seconds",
            "Age of the oldest delivery that is due and not taken by a worker",
            labels=["channel"],
        )
        now = utcnow()
        oldest = {
            str(kind): due
            for kind, due in session.execute(
                select(Delivery.channel_kind, func.min(Delivery.next_attempt_at))
                .where(is_due(now))
                .group_by(Delivery.channel_kind)
            )
        }
        for kind in sorted(set(KINDS) | set(oldest)):
            due = oldest.get(kind)
            lag = 0.0 if due is None else max(0.0, (now - _aware(due)).total_seconds())
            metric.add_metric([kind], lag)
        return metric


def _bucket_index(le: str) -> int:
    """Where a counter's bucket falls among today's: its own, or, for a bound no longer in
    `DURATION_BUCKETS`, the next larger one."""
    if le == "+Inf":
        return len(DURATION_BUCKETS)
    return bisect_left(DURATION_BUCKETS, float(le))


def _aware(value: Any) -> Any:
    # Aggregates may come back without the column's UTC type on SQLite: naive or text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def metrics_registry(database: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(database))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
