"""The working-day calendar: chinese_calendar's years (the 2024 National Day and Spring
Festival with their make-up days), a year it does not know with and without the overrides an
admin enters, and those overrides through the service, the API and the CLI."""

from __future__ import annotations

from datetime import date

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from publisher.cli import main as cli
from publisher.config import Settings
from publisher.db import get_database
from publisher.errors import InvalidInput
from publisher.services import workdays
from publisher.services.workdays import Calendar, load_calendar
from tests.support import user_with_token

# The year after the last one chinese_calendar 1.11 carries.
UNKNOWN = 2027


@pytest.fixture
def settings(publisher_env: Settings) -> Settings:
    return publisher_env


def test_twenty_working_days_after_27_september_2024_is_30_october() -> None:
    """National Day: 1–7 October off, Sunday 29 September and Saturday 12 October worked."""
    calendar = Calendar()
    assert calendar.add_working_days(date(2024, 9, 27), 20) == date(2024, 10, 30)
    assert calendar.working_days_between(date(2024, 9, 27), date(2024, 10, 30)) == 20
    assert calendar.is_workday(date(2024, 9, 29)) and calendar.is_workday(date(2024, 10, 12))
    assert calendar.confirmed_between(date(2024, 9, 27), date(2024, 10, 30))


def test_the_2024_spring_festival_and_its_make_up_days() -> None:
    """10–17 February off; Sundays 4 and 18 February worked."""
    calendar = Calendar()
    assert calendar.add_working_days(date(2024, 2, 3), 1) == date(2024, 2, 4)  # a Sunday
    assert calendar.add_working_days(date(2024, 2, 9), 1) == date(2024, 2, 18)  # a Sunday
    assert calendar.add_working_days(date(2024, 2, 9), 2) == date(2024, 2, 19)
    # 5–9 February, 18 February and 19 February.
    assert calendar.working_days_between(date(2024, 2, 4), date(2024, 2, 19)) == 7
    assert calendar.working_days_between(date(2024, 2, 19), date(2024, 2, 4)) == -7
    assert calendar.working_days_between(date(2024, 2, 10), date(2024, 2, 17)) == 0
    with pytest.raises(ValueError):
        calendar.add_working_days(date(2024, 2, 9), -1)


def test_a_year_the_library_does_not_know_counts_weekends_only_and_says_so() -> None:
    assert not workdays.library_knows(UNKNOWN) and workdays.library_knows(2026)
    calendar = Calendar()
    # Friday 1 October 2027 counts as a working day: nobody entered the holiday.
    assert calendar.add_working_days(date(UNKNOWN, 9, 30), 1) == date(UNKNOWN, 10, 1)
    assert calendar.add_working_days(date(UNKNOWN, 10, 1), 1) == date(UNKNOWN, 10, 4)
    assert not calendar.confirmed_between(date(UNKNOWN, 9, 30), date(UNKNOWN, 10, 4))
    # A span that reaches into the unknown year from a known one is unconfirmed too.
    assert not calendar.confirmed_between(date(2026, 12, 1), date(UNKNOWN, 1, 4))


def test_overrides_and_a_confirmed_year_count_the_unknown_year(settings: Settings) -> None:
    with get_database().session() as session:
        for day in range(1, 8):
            workdays.set_override(
                session, date(UNKNOWN, 10, day), is_workday=False, note="国庆节", actor="admin1"
            )
        workdays.set_override(
            session, date(UNKNOWN, 10, 9), is_workday=True, note="国庆节调休", actor="admin1"
        )
        calendar = load_calendar(session)
        assert calendar.add_working_days(date(UNKNOWN, 9, 30), 1) == date(UNKNOWN, 10, 8)
        assert calendar.add_working_days(date(UNKNOWN, 10, 8), 1) == date(UNKNOWN, 10, 9)
        assert not calendar.confirmed_between(date(UNKNOWN, 9, 30), date(UNKNOWN, 10, 9))
        workdays.confirm_year(session, UNKNOWN, actor="admin1")
        workdays.confirm_year(session, UNKNOWN, actor="admin1")  # again: no change
        assert load_calendar(session).confirmed_between(date(UNKNOWN, 1, 1), date(2024, 1, 1))
        # A second entry for a day replaces the first.
        workdays.set_override(session, date(UNKNOWN, 10, 9), is_workday=False, note=None, actor="a")
        assert not load_calendar(session).is_workday(date(UNKNOWN, 10, 9))
        view = workdays.year_view(session, UNKNOWN)
    assert view.confirmed and not view.known_to_library
    assert [row["day"] for row in view.overrides][-1] == "2027-10-09"
    assert len(view.overrides) == 8


def test_bad_overrides_name_the_field_and_rule(settings: Settings) -> None:
    with get_database().session() as session:
        with pytest.raises(InvalidInput) as too_long:
            workdays.set_override(
                session, date(UNKNOWN, 1, 1), is_workday=False, note="节" * 201, actor="a"
            )
        with pytest.raises(InvalidInput) as far:
            workdays.confirm_year(session, 3027, actor="a")
    assert [(p.field, p.rule) for p in too_long.value.problems] == [("note", "max_length")]
    assert [(p.field, p.rule) for p in far.value.problems] == [("year", "range")]


def test_admins_enter_overrides_and_supervisors_read_them(
    settings: Settings, client: TestClient
) -> None:
    admin = {"Authorization": f"Bearer {user_with_token(get_database(), 'admin')}"}
    watcher = {"Authorization": f"Bearer {user_with_token(get_database(), 'supervisor')}"}
    made = client.post(
        "/api/v1/calendar/overrides",
        json={"day": "2027-02-08", "is_workday": False, "note": "春节"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    assert made.json()["is_workday"] is False
    shown = client.get("/api/v1/calendar/overrides?year=2027", headers=watcher).json()
    assert shown["known_to_library"] is False and shown["confirmed"] is False
    assert [(o["day"], o["note"]) for o in shown["overrides"]] == [("2027-02-08", "春节")]
    refused = client.post(
        "/api/v1/calendar/overrides", json={"day": "2027-02-30", "is_workday": True}, headers=admin
    )
    assert refused.status_code == 422
    assert "day" in refused.text
    assert (
        client.post(
            "/api/v1/calendar/overrides",
            json={"day": "2027-02-09", "is_workday": True},
            headers=watcher,
        ).status_code
        == 403
    )


def test_the_cli_sets_confirms_and_shows_a_year(settings: Settings) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["calendar", "set", "2027-10-01", "--holiday", "--note", "国庆节"])
    assert made.exit_code == 0, made.output
    shown = runner.invoke(cli, ["calendar", "show", "2027"])
    assert "尚未确认" in shown.output and "国庆节" in shown.output and "2027-10-01" in shown.output
    assert runner.invoke(cli, ["calendar", "confirm", "2027"]).exit_code == 0
    assert "已由管理员确认" in runner.invoke(cli, ["calendar", "show", "2027"]).output
    assert "chinese_calendar" in runner.invoke(cli, ["calendar", "show", "2024"]).output
    bad = runner.invoke(cli, ["calendar", "set", "2027-13-01", "--workday"])
    assert bad.exit_code == 2
    with get_database().session() as session:
        assert not load_calendar(session).is_workday(date(UNKNOWN, 10, 1))
