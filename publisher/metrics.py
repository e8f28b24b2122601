"""Prometheus metrics read from the database at scrape time.

The API, every worker and beat share one database, so a collector that reads it gives the same
numbers whichever process is scraped — no per-process counters that reset on restart.

- `publisher_deliveries{state,channel}`: deliveries per state (gauge)
- `publisher_attempts_total{channel,outcome}`: every attempt ever made, retries included
- `publisher_attempt_duration_seconds{channel}`: finished attempts' durations (histogram)
- `publisher_queue_lag_seconds{channel}`: age of the oldest due delivery no worker has taken
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from channels.registry import KINDS
from publisher.db import Database
from publisher.delivery.claims import is_due
from publisher.models import Attempt, Delivery, DeliveryState, utcnow
from publisher.services.queries import counts_by_state

# Seconds; channel calls range from a fast upsert to a slow WeChat upload.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DatabaseCollector(Collector):
    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        with self.database.session() as session:
            yield self._deliveries(session)
            yield self._attempts(session)
            yield self._durations(session)
            yield self._queue_lag(session)

    def _deliveries(self, session: Session) -> Metric:
        metric = GaugeMetricFamily(
            "publisher_deliveries", "Deliveries by state and channel", labels=["state", "channel"]
        )
        for kind, states in sorted(counts_by_state(session).items()):
            for state in DeliveryState:
                metric.add_metric([state.value, kind], states.get(state.value, 0))
        return metric

    def _attempts(self, session: Session) -> Metric:
        metric = CounterMetricFamily(
            "publisher_attempts",
            "Calls made to channels, retries included, by outcome",
            labels=["channel", "outcome"],
        )
        rows = session.execute(
            select(Delivery.channel_kind, Attempt.outcome, func.count())
            .join(Delivery, Attempt.delivery_id == Delivery.id)
            .group_by(Delivery.channel_kind, Attempt.outcome)
        )
        for kind, outcome, n in rows:
            metric.add_metric([str(kind), str(getattr(outcome, "value", outcome))], int(n))
        return metric

    def _durations(self, session: Session) -> Metric:
        metric = HistogramMetricFamily(
            "publisher_attempt_duration_seconds",
            "Duration of finished calls to channels",
            labels=["channel"],
        )
        columns: list[Any] = [
            func.sum(case((Attempt.duration_ms <= bound * 1000, 1), else_=0))
            for bound in DURATION_BUCKETS
        ]
        rows = session.execute(
            select(
                Delivery.channel_kind,
                func.count(),
                func.coalesce(func.sum(Attempt.duration_ms), 0),
                *columns,
            )
            .join(Delivery, Attempt.delivery_id == Delivery.id)
            .where(Attempt.duration_ms.is_not(None))
            .group_by(Delivery.channel_kind)
        )
        for kind, count, total_ms, *cumulative in rows:
            buckets = [
                (_bound(b), float(c or 0))
                for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", float(count)))
            metric.add_metric([str(kind)], buckets, float(total_ms) / 1000)
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


def _bound(value: float) -> str:
    return repr(float(value))


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
