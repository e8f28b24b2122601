"""The operator's read models (publisher/services/queue_figures.py) on both backends: attempts
counted per channel and hour in SQL (SQLite's `strftime`, PostgreSQL's `date_trunc`), the
queue per channel, and the time from publishing to live."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.config import Settings
from publisher.db import Database
from publisher.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryState,
    Item,
    Revision,
    WaitReason,
)
from publisher.services.items import create_item
from publisher.services.queue_figures import (
    attempts_per_hour,
    channel_queues,
    hour_of,
    publish_to_live,
)
from tests.support import fresh_postgres, item_fields, migrated_sqlite

# Half past an hour, so that nothing seeded falls on an hour's edge.
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = fresh_postgres() if request.param == "postgresql" else migrated_sqlite(tmp_path)
    database = Database(url)
    yield database
    database.dispose()


def delivery(session: Session, kind: str, state: DeliveryState, **values: Any) -> Delivery:
    item = create_item(session, Settings(), item_fields(), actor="t")
    revision = session.scalars(select(Revision.id).where(Revision.item_id == item.id)).one()
    row = Delivery(
        item_id=item.id, channel_kind=kind, desired_revision_id=revision, state=state, **values
    )
    session.add(row)
    session.flush()
    return row


def ended(session: Session, row: Delivery, outcome: AttemptOutcome, at: datetime) -> None:
    session.add(
        Attempt(
            delivery_id=row.id,
            number=1,
            action="create",
            started_at=at - timedelta(seconds=2),
            finished_at=at,
            outcome=outcome,
        )
    )


def test_attempts_are_counted_per_channel_and_hour(database: Database) -> None:
    with database.session() as session:
        website = delivery(session, "website", DeliveryState.LIVE)
        weibo = delivery(session, "weibo", DeliveryState.RETRYING)
        ended(session, website, AttemptOutcome.OK, NOW - timedelta(minutes=20))  # this hour
        ended(session, website, AttemptOutcome.OK, NOW - timedelta(hours=3, minutes=5))
        ended(session, website, AttemptOutcome.ABANDONED, NOW - timedelta(hours=3, minutes=1))
        ended(session, weibo, AttemptOutcome.RETRY, NOW - timedelta(hours=23, minutes=10))
        ended(session, weibo, AttemptOutcome.DEFERRED, NOW - timedelta(minutes=1))  # waiting
        ended(session, weibo, AttemptOutcome.FAILED, NOW - timedelta(hours=25))  # too old
    with database.session() as session:
        hours = attempts_per_hour(session, NOW)
    site = {
        h.start: (h.succeeded, h.failed) for h in hours["website"].hours if h.succeeded or h.failed
    }
    assert site == {hour_of(NOW): (1, 0), hour_of(NOW) - timedelta(hours=3): (1, 1)}
    assert hours["website"].failure_rate == pytest.approx(1 / 3)
    assert len(hours["website"].hours) == 24
    assert hours["website"].hours[0].start == hour_of(NOW) - timedelta(hours=23)
    micro = {
        h.start: (h.succeeded, h.failed) for h in hours["weibo"].hours if h.succeeded or h.failed
    }
    assert micro == {hour_of(NOW) - timedelta(hours=23): (0, 1)}
    assert hours["catalogue"].failure_rate is None


def test_the_queue_and_the_time_to_live(database: Database) -> None:
    with database.session() as session:
        first_due = NOW + timedelta(minutes=30)
        for due in (first_due + timedelta(hours=1), first_due):
            delivery(
                session,
                "weibo",
                DeliveryState.DEFERRED,
                next_attempt_at=due,
                wait_reason=WaitReason.RATE_LIMIT.value,
            )
        delivery(session, "weibo", DeliveryState.PENDING, wait_reason=WaitReason.WEBSITE.value)
        for seconds in (30, 90, 50, 400):
            row = delivery(session, "website", DeliveryState.LIVE)
            item = session.get(Item, row.item_id)
            assert item is not None
            item.published_at = NOW - timedelta(hours=2)
            row.live_at = item.published_at + timedelta(seconds=seconds)
            ended(session, row, AttemptOutcome.OK, row.live_at)
        old = delivery(session, "catalogue", DeliveryState.LIVE)
        ended(session, old, AttemptOutcome.OK, NOW - timedelta(days=3))
    with database.session() as session:
        queues = channel_queues(session, NOW)
        to_live = publish_to_live(session, NOW)
    weibo = queues["weibo"]
    assert weibo.count(DeliveryState.DEFERRED) == 2 and weibo.count(DeliveryState.PENDING) == 1
    assert weibo.waiting == {"rate_limit": 2, "website": 1}
    assert weibo.deferred_until == first_due
    assert queues["website"].succeeded_last_hour == 0, "they ended two hours ago"
    assert queues["website"].last_success == NOW - timedelta(hours=2) + timedelta(seconds=400)
    assert queues["catalogue"].last_success == NOW - timedelta(days=3), "found further back"
    assert queues["wechat"].last_success is None
    website = to_live["website"]
    assert website.count == 4
    assert website.median == timedelta(seconds=70)  # (50 + 90) / 2
    assert website.p90 == timedelta(seconds=400)
    assert to_live["weibo"].count == 0 and to_live["weibo"].median is None
