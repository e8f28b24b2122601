"""The working-day calendar's run-time data: holidays and make-up working days an admin
entered from the State Council's notice, and the years an admin confirmed complete."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from publisher.models.base import Base, utcnow


class WorkdayOverride(Base):
    """One day that is (or is not) a working day whatever the weekday says: a holiday on a
    weekday, or a weekend day worked in exchange (调休)."""

    __tablename__ = "workday_overrides"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfirmedYear(Base):
    """A year whose holidays and make-up days are all entered: its dates are no longer
    counted on weekends alone (`calendar_confirmed` turns true)."""

    __tablename__ = "workday_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime] = mapped_column(default=utcnow)
