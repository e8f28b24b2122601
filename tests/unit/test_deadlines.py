"""Each item's Art. 26 deadline as the clock passes (the tests pass `now`): on track, due
soon, overdue at Beijing's midnight, on time when live on both the website and the catalogue,
late by working days; an edit after publication counts from its own day; a year nobody
confirmed says so; and the item API shows the fields. A real migrated store."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from publisher.cli import main as cli
from publisher.config import Settings
from publisher.db import get_database
from publisher.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryState,
    Item,
    ItemStatus,
    Revision,
)
from publisher.services.deadlines import BEIJING, Timeliness, deadline_of, deadlines
from publisher.services.items import create_item
from publisher.services.workdays import Calendar
from tests.support import item_fields, user_with_token


@pytest.fixture
def settings(publisher_env: Settings) -> Settings:
    return publisher_env


def beijing(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BEIJING)  # type: ignore[misc]


def _item(session: Session, settings: Settings, formed_on: date) -> tuple[Item, Revision]:
    item = create_item(session, settings, item_fields(formed_on=formed_on), actor="li")
    revision = session.query(Revision).filter_by(item_id=item.id).one()
    return item, revision


def _live(session: Session, item: Item, kind: str, revision: Revision, at: datetime) -> Delivery:
    delivery = Delivery(
        item_id=item.id,
        channel_kind=kind,
        desired_revision_id=revision.id,
        applied_revision_id=revision.id,
        state=DeliveryState.LIVE,
        live_at=at,
    )
    session.add(delivery)
    session.flush()
    return delivery


def _state(session: Session, item: Item, revision: Revision, now: datetime) -> Any:
    return deadlines(session, [item], {item.id: revision}, now=now)[item.id]


def test_the_states_as_the_clock_passes(settings: Settings) -> None:
    with get_database().session() as session:
        item, rev = _item(session, settings, date(2024, 9, 27))
        early = _state(session, item, rev, beijing(2024, 10, 8, 10))
        assert (early.due_on, early.timeliness) == (date(2024, 10, 30), Timeliness.ON_TRACK)
        assert early.calendar_confirmed and early.days_late is None
        # 24, 25, 28, 29 and 30 October left: five working days.
        assert _state(session, item, rev, beijing(2024, 10, 23, 9)).timeliness == "due_soon"
        assert _state(session, item, rev, beijing(2024, 10, 22, 9)).timeliness == "on_track"
        assert _state(session, item, rev, beijing(2024, 10, 30, 23, 59)).timeliness == "due_soon"
        # Beijing's midnight, while it is still 30 October in UTC.
        assert _state(session, item, rev, beijing(2024, 10, 31, 0, 1)).timeliness == "overdue"

        _live(session, item, "website", rev, beijing(2024, 10, 30, 23))
        later = beijing(2024, 11, 1, 9)
        assert _state(session, item, rev, later).timeliness == "overdue"  # website alone
        catalogue = _live(session, item, "catalogue", rev, beijing(2024, 10, 30, 23, 30))
        on_time = _state(session, item, rev, later)
        assert (on_time.timeliness, on_time.days_late) == (Timeliness.ON_TIME, None)
        # Seen on time before the due day too.
        assert _state(session, item, rev, beijing(2024, 10, 10)).timeliness == "on_time"

        catalogue.live_at = beijing(2024, 11, 4, 10)  # 31 Oct, 1 and 4 Nov: three days late
        session.flush()
        late = _state(session, item, rev, beijing(2024, 12, 1))
        assert (late.timeliness, late.days_late) == (Timeliness.LATE, 3)

        catalogue.state, catalogue.live_at = DeliveryState.PENDING, None
        session.flush()
        assert _state(session, item, rev, later).timeliness == "overdue"
        item.status = ItemStatus.RETRACTED
        assert _state(session, item, rev, later).timeliness is None


def test_an_edit_after_publication_counts_from_its_own_day(settings: Settings) -> None:
    with get_database().session() as session:
        item, first = _item(session, settings, date(2024, 9, 27))
        website = _live(session, item, "website", first, beijing(2024, 10, 10, 10))
        catalogue = _live(session, item, "catalogue", first, beijing(2024, 10, 10, 10))
        item.published_at = beijing(2024, 10, 10, 9)
        edit = Revision(
            item_id=item.id,
            number=2,
            title=first.title,
            body_html="<p>补贴标准调整为每户每月220元。</p>",
            formed_on=first.formed_on,
            content_hash="edited",
            created_at=beijing(2024, 11, 5, 7),  # 4 November in UTC
        )
        session.add(edit)
        session.flush()
        before = _state(session, item, edit, beijing(2024, 11, 6, 9))
        # 20 working days after Tuesday 5 November.
        assert (before.counted_from, before.due_on) == (date(2024, 11, 5), date(2024, 12, 3))
        assert before.timeliness == "on_track"  # the channels still show revision 1
        for number, delivery in enumerate((website, catalogue), start=2):
            delivery.applied_revision_id = edit.id
            session.add(
                Attempt(
                    delivery_id=delivery.id,
                    number=number,
                    action="update",
                    revision_id=edit.id,
                    outcome=AttemptOutcome.OK,
                    finished_at=beijing(2024, 12, 4, 10 + number),
                )
            )
        session.flush()
        late = _state(session, item, edit, beijing(2024, 12, 10))
        assert (late.timeliness, late.days_late) == (Timeliness.LATE, 1)


def test_a_deadline_in_a_year_nobody_confirmed_says_so() -> None:
    item = Item(status=ItemStatus.DRAFT)
    revision = Revision(formed_on=date(2026, 12, 15), created_at=beijing(2026, 12, 15))
    now = beijing(2026, 12, 16)
    unconfirmed = deadline_of(Calendar(), item, revision, None, now=now)
    # 16 Dec 2026 … 12 Jan 2027 on weekdays alone (1 January counted as worked).
    assert unconfirmed.due_on == date(2027, 1, 12)
    assert not unconfirmed.calendar_confirmed
    entered = Calendar(overrides={date(2027, 1, 1): False}, confirmed_years=frozenset({2027}))
    confirmed = deadline_of(entered, item, revision, None, now=now)
    assert confirmed.due_on == date(2027, 1, 13) and confirmed.calendar_confirmed
    assert confirmed.fields() == {
        "due_on": "2027-01-13",
        "timeliness": "on_track",
        "days_late": None,
        "calendar_confirmed": True,
    }


def test_the_item_api_shows_the_deadline(settings: Settings, client: TestClient) -> None:
    with get_database().session() as session:
        item, _ = _item(session, settings, date(2024, 9, 27))
        item_id = item.id
    headers = {"Authorization": f"Bearer {user_with_token(get_database(), 'supervisor')}"}
    shown = client.get(f"/api/v1/items/{item_id}", headers=headers).json()
    listed = client.get("/api/v1/items", headers=headers).json()["results"]
    expected = {
        "due_on": "2024-10-30",
        "timeliness": "overdue",
        "days_late": None,
        "calendar_confirmed": True,
    }
    assert {key: shown[key] for key in expected} == expected
    assert [{key: row[key] for key in expected} for row in listed] == [expected]


def test_items_show_prints_the_deadline(settings: Settings) -> None:
    with get_database().session() as session:
        item, _ = _item(session, settings, date(2024, 9, 27))
        item_id = item.id
    shown = CliRunner().invoke(cli, ["items", "show", str(item_id)])
    assert shown.exit_code == 0, shown.output
    assert "公开期限" in shown.output and "2024-10-30 已逾期" in shown.output
    assert "未确认" not in shown.output
