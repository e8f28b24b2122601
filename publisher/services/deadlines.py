"""Each item's Art. 26 deadline: live on the website and in the catalogue within 20 working
days of the information being formed or changed.

Counted from: the latest revision's `formed_on` (成文日期); but once the item has been
published, an edit changes published information, so a revision made after the first
publication counts from its own day (Beijing) instead. Due on: 20 working days after that
(`publisher.services.workdays`), to the end of that day, Beijing time.

Live: both the website's and the catalogue's deliveries show the latest revision; the moment
is the later of the two. For an item never edited after publication that is the deliveries'
`live_at`; for an edit, the first successful attempt that sent the edited revision.

States: `on_track`, `due_soon` (5 working days or fewer left, the due day included),
`overdue` (past the due day, not live), `on_time`, `late` (live after the due day, with
`days_late` working days). A retracted item has none (None). Computed from what is stored
whenever it is read; nothing runs in the background. Functions take a session, never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from publisher.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryState,
    Item,
    ItemStatus,
    Revision,
)
from publisher.services.workdays import Calendar, load_calendar

# Art. 26 counts in Beijing's days whatever the server's time zone.
BEIJING = ZoneInfo("Asia/Shanghai")
DEADLINE_WORKING_DAYS = 20
DUE_SOON_WORKING_DAYS = 5
# Where the information must be live for the deadline to be met.
REQUIRED_CHANNELS = ("website", "catalogue")


class Timeliness(StrEnum):
    ON_TRACK = "on_track"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    ON_TIME = "on_time"
    LATE = "late"


@dataclass(frozen=True)
class Deadline:
    counted_from: date
    due_on: date
    timeliness: Timeliness | None
    # Working days after the due day the item went live (`late` only).
    days_late: int | None
    # False: a date of this answer lies in a year neither the library nor an admin confirmed,
    # counted on weekends alone.
    calendar_confirmed: bool

    def fields(self) -> dict[str, Any]:
        """The item API's fields (DESIGN §6.1)."""
        return {
            "due_on": self.due_on.isoformat(),
            "timeliness": None if self.timeliness is None else self.timeliness.value,
            "days_late": self.days_late,
            "calendar_confirmed": self.calendar_confirmed,
        }


def beijing_day(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


def counted_from(item: Item, latest: Revision) -> date:
    """The day the deadline counts from (see the module docstring)."""
    if item.published_at is not None and latest.created_at > item.published_at:
        return beijing_day(latest.created_at)
    return latest.formed_on


def deadline_of(
    calendar: Calendar,
    item: Item,
    latest: Revision,
    live_at: datetime | None,
    *,
    now: datetime,
) -> Deadline:
    """The deadline of `item` whose latest revision is `latest`, live everywhere required
    since `live_at` (None: not yet), as it stands at `now` (aware)."""
    start = counted_from(item, latest)
    due = calendar.add_working_days(start, DEADLINE_WORKING_DAYS)
    today = beijing_day(now)
    days_late = None
    if item.status == ItemStatus.RETRACTED:
        state = None
        last = due
    elif live_at is not None:
        live_day = beijing_day(live_at)
        last = max(due, live_day)
        if live_day <= due:
            state = Timeliness.ON_TIME
        else:
            state = Timeliness.LATE
            days_late = calendar.working_days_between(due, live_day)
    elif today > due:
        state, last = Timeliness.OVERDUE, today
    else:
        last = due
        left = calendar.working_days_between(today, due)
        state = Timeliness.DUE_SOON if left <= DUE_SOON_WORKING_DAYS else Timeliness.ON_TRACK
    return Deadline(
        counted_from=start,
        due_on=due,
        timeliness=state,
        days_late=days_late,
        calendar_confirmed=calendar.confirmed_between(start, last),
    )


def live_moments(
    session: Session, items: Iterable[Item], latest: Mapping[int, Revision]
) -> dict[int, datetime]:
    """When each item's latest revision was live on every required channel (items not live
    everywhere are absent)."""
    by_id = {item.id: item for item in items if item.id in latest}
    if not by_id:
        return {}
    deliveries = list(
        session.scalars(
            select(Delivery).where(
                Delivery.item_id.in_(list(by_id)), Delivery.channel_kind.in_(REQUIRED_CHANNELS)
            )
        )
    )
    edited = {
        item_id
        for item_id, item in by_id.items()
        if item.published_at is not None and latest[item_id].created_at > item.published_at
    }
    sent = _first_sent(session, [d for d in deliveries if d.item_id in edited], latest)
    moments: dict[int, dict[str, datetime]] = {}
    for delivery in deliveries:
        revision = latest[delivery.item_id]
        shown = (
            delivery.desired_present
            and delivery.state == DeliveryState.LIVE
            and delivery.applied_revision_id == revision.id
            and delivery.live_at is not None
        )
        if not shown:
            continue
        assert delivery.live_at is not None
        moment = sent.get(delivery.id) if delivery.item_id in edited else delivery.live_at
        moments.setdefault(delivery.item_id, {})[delivery.channel_kind] = moment or delivery.live_at
    return {
        item_id: max(kinds.values())
        for item_id, kinds in moments.items()
        if set(kinds) == set(REQUIRED_CHANNELS)
    }


def _first_sent(
    session: Session, deliveries: list[Delivery], latest: Mapping[int, Revision]
) -> dict[int, datetime]:
    """Per delivery, when its first successful attempt with the item's latest revision
    finished."""
    if not deliveries:
        return {}
    rows = session.execute(
        select(Attempt.delivery_id, Attempt.revision_id, func.min(Attempt.finished_at))
        .where(
            Attempt.delivery_id.in_([d.id for d in deliveries]),
            Attempt.outcome == AttemptOutcome.OK,
            Attempt.revision_id.in_([latest[d.item_id].id for d in deliveries]),
        )
        .group_by(Attempt.delivery_id, Attempt.revision_id)
    )
    wanted = {d.id: latest[d.item_id].id for d in deliveries}
    return {
        delivery_id: finished
        for delivery_id, revision_id, finished in rows
        if finished is not None and wanted.get(delivery_id) == revision_id
    }


def deadlines(
    session: Session,
    items: Iterable[Item],
    latest: Mapping[int, Revision],
    *,
    now: datetime | None = None,
) -> dict[int, Deadline]:
    """The deadline of each of `items` that has a revision in `latest`, at `now` (default:
    the present)."""
    items = list(items)
    now = now or datetime.now(UTC)
    calendar = load_calendar(session)
    live = live_moments(session, items, latest)
    return {
        item.id: deadline_of(calendar, item, latest[item.id], live.get(item.id), now=now)
        for item in items
        if item.id in latest
    }
