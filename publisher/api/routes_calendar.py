"""The working-day calendar's overrides: admins enter holidays and make-up working days for
the years `chinese_calendar` does not know; supervisors read them (`GET/POST
/calendar/overrides`). Confirming a year is the CLI's (`publisher calendar confirm`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from publisher.api.routes_common import database_of, requires
from publisher.auth import Principal
from publisher.models import Role
from publisher.services import workdays
from publisher.services.deadlines import beijing_day

router = APIRouter(tags=["calendar"])


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: date
    is_workday: bool = Field(description="true: a make-up working day; false: a holiday")
    note: str | None = Field(None, max_length=workdays.NOTE_MAX)


@router.get("/calendar/overrides")
def list_overrides(
    request: Request,
    year: int | None = Query(
        None, ge=workdays.YEAR_MIN, le=workdays.YEAR_MAX, description="default: this year"
    ),
    _: Principal = Depends(requires(Role.SUPERVISOR)),
) -> dict[str, Any]:
    """The year's overrides, whether `chinese_calendar` knows the year and whether it is
    confirmed (an unconfirmed year's dates count weekends only, besides the overrides)."""
    with database_of(request).session() as session:
        return asdict(workdays.year_view(session, year or beijing_day(datetime.now(UTC)).year))


@router.post("/calendar/overrides", status_code=status.HTTP_201_CREATED)
def set_override(
    body: OverrideIn, request: Request, who: Principal = Depends(requires())
) -> dict[str, Any]:
    """Record a day as a holiday or a working day (admins), replacing an earlier entry."""
    with database_of(request).session() as session:
        row = workdays.set_override(
            session, body.day, is_workday=body.is_workday, note=body.note, actor=who.actor
        )
        return workdays.override_view(row)
