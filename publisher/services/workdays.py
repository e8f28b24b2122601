"""The working-day calendar of Art. 26's 20 working days.

A day is a working day by, in order: an override an admin entered (`workday_overrides`: a
holiday, or a weekend day worked in exchange, 调休); the `chinese_calendar` library, which
carries the State Council's notices for the years it knows (it raises for a later year); and
otherwise the weekday alone (Monday to Friday). A year is *confirmed* when the library knows
it or an admin marked it complete (`workday_years`); an answer that counted a day of an
unconfirmed year says so (`confirmed` False), and whoever shows it shows the flag
(`calendar_confirmed`). Functions take a session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache

import chinese_calendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.errors import FieldProblem, InvalidInput
from publisher.models import ConfirmedYear, WorkdayOverride

NOTE_MAX = 200
# A year far outside the clock's use is a typing error, not a calendar to keep.
YEAR_MIN, YEAR_MAX = 2000, 2100


@cache
def library_knows(year: int) -> bool:
    """Whether `chinese_calendar` carries the State Council's notice for `year`."""
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@dataclass
class Calendar:
    """The working days as the store knows them now (load with `load_calendar`).

    `counted_unconfirmed` records whether any answer so far counted a day of an unconfirmed
    year; `span` tells it for one computation."""

    overrides: dict[date, bool] = field(default_factory=dict)
    confirmed_years: frozenset[int] = frozenset()

    def is_confirmed(self, year: int) -> bool:
        return library_knows(year) or year in self.confirmed_years

    def is_workday(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        if library_knows(day.year):
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < 5

    def confirmed_between(self, first: date, last: date) -> bool:
        """Whether every year from `first` to `last` (either order) is confirmed."""
        low, high = sorted((first.year, last.year))
        return all(self.is_confirmed(year) for year in range(low, high + 1))

    def add_working_days(self, start: date, n: int) -> date:
        """The `n`th working day after `start` (`start` itself not counted); `n` ≥ 0, and 0
        gives `start`."""
        if n < 0:
            raise ValueError("n must not be negative")
        day = start
        while n:
            day += timedelta(days=1)
            if self.is_workday(day):
                n -= 1
        return day

    def working_days_between(self, a: date, b: date) -> int:
        """The working days after `a` up to and including `b`: 0 when equal, negative when
        `b` is before `a` (the working days after `b` up to and including `a`)."""
        if b < a:
            return -self.working_days_between(b, a)
        return sum(1 for k in range(1, (b - a).days + 1) if self.is_workday(a + timedelta(k)))


def load_calendar(session: Session) -> Calendar:
    overrides = {row.day: row.is_workday for row in session.scalars(select(WorkdayOverride))}
    years = frozenset(session.scalars(select(ConfirmedYear.year)))
    return Calendar(overrides, years)


def add_working_days(session: Session, start: date, n: int) -> date:
    return load_calendar(session).add_working_days(start, n)


def working_days_between(session: Session, a: date, b: date) -> int:
    return load_calendar(session).working_days_between(a, b)


def _check_year(year: int, name: str = "year") -> None:
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise InvalidInput(
            [
                FieldProblem(
                    name,
                    "range",
                    f"{name} must be between {YEAR_MIN} and {YEAR_MAX}",
                    values={"min": YEAR_MIN, "max": YEAR_MAX},
                )
            ]
        )


def set_override(
    session: Session, day: date, *, is_workday: bool, note: str | None, actor: str
) -> WorkdayOverride:
    """Record that `day` is (or is not) a working day, replacing an earlier entry for it
    (audited). Raises `InvalidInput` for a day outside the years kept or a note too long."""
    _check_year(day.year, "day")
    note = (note or "").strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise InvalidInput(
            [
                FieldProblem(
                    "note",
                    "max_length",
                    f"at most {NOTE_MAX} characters",
                    values={"limit": NOTE_MAX},
                )
            ]
        )
    row = session.get(WorkdayOverride, day)
    if row is None:
        row = WorkdayOverride(day=day)
        session.add(row)
    row.is_workday, row.note, row.created_by = is_workday, note, actor
    audit(
        session,
        actor,
        "calendar.override",
        "workday_overrides",
        day=day.isoformat(),
        is_workday=is_workday,
        note=note,
    )
    session.flush()
    return row


def confirm_year(session: Session, year: int, *, actor: str) -> ConfirmedYear:
    """Mark `year`'s holidays and make-up days complete (audited; again: no change)."""
    _check_year(year)
    row = session.get(ConfirmedYear, year)
    if row is None:
        row = ConfirmedYear(year=year, confirmed_by=actor)
        session.add(row)
        audit(session, actor, "calendar.confirm", "workday_years", year=year)
        session.flush()
    return row


@dataclass(frozen=True)
class YearView:
    year: int
    known_to_library: bool
    confirmed: bool
    overrides: list[dict[str, object]]


def override_view(row: WorkdayOverride) -> dict[str, object]:
    return {
        "day": row.day.isoformat(),
        "is_workday": row.is_workday,
        "note": row.note,
        "created_by": row.created_by,
    }


def year_view(session: Session, year: int) -> YearView:
    """What the calendar knows of `year`: the library's notice, the overrides, confirmed."""
    _check_year(year)
    rows = session.scalars(
        select(WorkdayOverride)
        .where(WorkdayOverride.day >= date(year, 1, 1), WorkdayOverride.day <= date(year, 12, 31))
        .order_by(WorkdayOverride.day)
    )
    return YearView(
        year=year,
        known_to_library=library_knows(year),
        confirmed=load_calendar(session).is_confirmed(year),
        overrides=[override_view(row) for row in rows],
    )
