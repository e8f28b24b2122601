"""Read models of the operator's dashboard and charts: each channel's queue, the last hours'
attempts per channel and hour, and the time from publishing to live.

Everything is counted in SQL, grouped, on indexed columns (`deliveries (channel_kind, state)`,
`attempts.finished_at`, `deliveries.live_at`): the attempts table holds every call ever made,
so no read here goes further back than its window. Nothing here writes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from channels.registry import KINDS
from publisher.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryState,
    Item,
)
from publisher.services.queries import counts_by_state

# Attempts that ended in trouble: refused, to be retried, of unknown outcome, or abandoned by
# a worker that died. A deferral (the channel's quota or rate window) is waiting, not failing.
TROUBLE = (
    AttemptOutcome.FAILED,
    AttemptOutcome.RETRY,
    AttemptOutcome.UNKNOWN,
    AttemptOutcome.ABANDONED,
)
# How far back "last success" looks: the last day first (the usual answer, a short range of
# the index), then this far for the channels that had none.
LAST_SUCCESS_WINDOWS = (timedelta(days=1), timedelta(days=30))


@dataclass(frozen=True)
class ChannelQueue:
    """One channel's queue: deliveries by state, why the waiting ones wait, when the first
    deferred one is due, the successes of the last hour and the last success."""

    kind: str
    by_state: Mapping[str, int] = field(default_factory=dict)
    waiting: Mapping[str, int] = field(default_factory=dict)
    deferred_until: datetime | None = None
    succeeded_last_hour: int = 0
    last_success: datetime | None = None

    def count(self, state: DeliveryState) -> int:
        return self.by_state.get(state.value, 0)


def channel_queues(session: Session, now: datetime) -> dict[str, ChannelQueue]:
    """Every known channel's queue (`ChannelQueue`), in `KINDS` order."""
    counts = counts_by_state(session)
    waiting: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    for kind, reason, n in session.execute(
        select(Delivery.channel_kind, Delivery.wait_reason, func.count())
        .where(
            Delivery.state.in_((DeliveryState.PENDING, DeliveryState.DEFERRED)),
            Delivery.wait_reason.is_not(None),
        )
        .group_by(Delivery.channel_kind, Delivery.wait_reason)
    ):
        if reason is not None:
            waiting.setdefault(kind, {})[reason] = int(n)
    until: dict[str, datetime] = {
        kind: when
        for kind, when in session.execute(
            select(Delivery.channel_kind, func.min(Delivery.next_attempt_at))
            .where(Delivery.state == DeliveryState.DEFERRED)
            .group_by(Delivery.channel_kind)
        )
    }
    hour: dict[str, int] = {
        kind: n
        for kind, n in session.execute(
            select(Delivery.channel_kind, func.count())
            .join(Attempt, Attempt.delivery_id == Delivery.id)
            .where(Attempt.finished_at >= now - timedelta(hours=1))
            .where(Attempt.outcome == AttemptOutcome.OK)
            .group_by(Delivery.channel_kind)
        )
    }
    last = _last_successes(session, now)
    return {
        kind: ChannelQueue(
            kind=kind,
            by_state=counts.get(kind, {}),
            waiting=waiting.get(kind, {}),
            deferred_until=_aware(until.get(kind)),
            succeeded_last_hour=int(hour.get(kind, 0)),
            last_success=last.get(kind),
        )
        for kind in KINDS
    }


def _last_successes(session: Session, now: datetime) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for window in LAST_SUCCESS_WINDOWS:
        missing = [kind for kind in KINDS if kind not in found]
        if not missing:
            break
        rows = session.execute(
            select(Delivery.channel_kind, func.max(Attempt.finished_at))
            .join(Attempt, Attempt.delivery_id == Delivery.id)
            .where(Attempt.finished_at >= now - window)
            .where(Attempt.outcome == AttemptOutcome.OK)
            .where(Delivery.channel_kind.in_(missing))
            .group_by(Delivery.channel_kind)
        )
        for kind, when in rows:
            if when is not None:
                found[kind] = _aware(when) or when
    return found


@dataclass(frozen=True)
class HourCount:
    """Attempts that ended in one hour (`start`, UTC): succeeded, and ended in trouble."""

    start: datetime
    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ChannelHours:
    """One channel's attempts per hour over the window, oldest hour first."""

    kind: str
    hours: list[HourCount]

    @property
    def succeeded(self) -> int:
        return sum(h.succeeded for h in self.hours)

    @property
    def failed(self) -> int:
        return sum(h.failed for h in self.hours)

    @property
    def failure_rate(self) -> float | None:
        """The share of the window's ended attempts that ended in trouble; None if none."""
        ended = self.succeeded + self.failed
        return None if ended == 0 else self.failed / ended


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def attempts_per_hour(session: Session, now: datetime, hours: int = 24) -> dict[str, ChannelHours]:
    """Per channel, the attempts that ended in each of the last `hours` hours (the current
    one last), succeeded (`ok`) or in trouble (`TROUBLE`), counted in SQL per hour."""
    first = hour_of(now) - timedelta(hours=hours - 1)
    bucket = _hour_bucket(session, Attempt.finished_at)
    rows = session.execute(
        select(Delivery.channel_kind, bucket, Attempt.outcome, func.count())
        .join(Attempt, Attempt.delivery_id == Delivery.id)
        .where(Attempt.finished_at >= first)
        .where(Attempt.outcome.in_((AttemptOutcome.OK, *TROUBLE)))
        .group_by(Delivery.channel_kind, bucket, Attempt.outcome)
    )
    tally: dict[tuple[str, datetime], list[int]] = {}
    for kind, started, outcome, n in rows:
        start = _bucket_start(started)
        counts = tally.setdefault((kind, start), [0, 0])
        counts[0 if AttemptOutcome(outcome) == AttemptOutcome.OK else 1] += int(n)
    starts = [first + timedelta(hours=i) for i in range(hours)]
    return {
        kind: ChannelHours(
            kind,
            [HourCount(start, *tally.get((kind, start), (0, 0))) for start in starts],
        )
        for kind in KINDS
    }


def _hour_bucket(session: Session, column: Any) -> ColumnElement[Any]:
    """`column` cut to its hour in SQL (UTC): PostgreSQL's `date_trunc`, SQLite's `strftime`
    (SQLite keeps the UTC time as text)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.strftime("%Y-%m-%d %H:00:00", column)


def _bucket_start(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class TimeToLive:
    """From publishing an item to its copy going live on one channel, over the deliveries
    that went live in the window: how many, the median and the 90th percentile."""

    kind: str
    count: int = 0
    median: timedelta | None = None
    p90: timedelta | None = None


# The most deliveries per channel read for the percentiles (the newest ones).
TIME_TO_LIVE_SAMPLE = 5000


def publish_to_live(
    session: Session, now: datetime, window: timedelta = timedelta(hours=24)
) -> dict[str, TimeToLive]:
    """Per channel, the time from an item's publishing to its delivery's first going live,
    over the deliveries that went live within `window` (`deliveries.live_at`, indexed)."""
    out: dict[str, TimeToLive] = {}
    for kind in KINDS:
        rows = session.execute(
            select(Item.published_at, Delivery.live_at)
            .join(Item, Item.id == Delivery.item_id)
            .where(Delivery.live_at >= now - window, Delivery.channel_kind == kind)
            .where(Item.published_at.is_not(None))
            .order_by(Delivery.live_at.desc())
            .limit(TIME_TO_LIVE_SAMPLE)
        )
        seconds = sorted(
            max(0.0, (live - published).total_seconds())
            for published, live in rows
            if published is not None and live is not None
        )
        if not seconds:
            out[kind] = TimeToLive(kind)
            continue
        p90 = seconds[math.ceil(0.9 * len(seconds)) - 1]  # nearest rank
        out[kind] = TimeToLive(
            kind,
            len(seconds),
            timedelta(seconds=statistics.median(seconds)),
            timedelta(seconds=p90),
        )
    return out
