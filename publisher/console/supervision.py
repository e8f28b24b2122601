"""The supervisors' home page (`/console/supervision`), for supervisors and admins: items per
department and per domain by status, each figure a link to the item list filtered to it, and
the items first published in the last 30 days per department.

The statutory-deadline figures (due, on time, late, overdue) come with the deadline clock
(issue 15); until then the page says so and shows none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from publisher.api.routes_common import database_of, settings_of
from publisher.console.web import Viewer, render, viewer
from publisher.models import ItemStatus, Role
from publisher.services.item_counts import CountRow, Dimension, item_counts, totals

router = APIRouter(include_in_schema=False)

RECENT_DAYS = 30
ITEM_LIST = "/console/items"
# The figures of a row, in column order: a status of the item, or `failing` (an item with a
# failed delivery). The value is also the item list's `state` filter.
COLUMNS: tuple[str, ...] = (
    ItemStatus.DRAFT.value,
    ItemStatus.SUBMITTED.value,
    ItemStatus.APPROVED.value,
    ItemStatus.PUBLISHED.value,
    ItemStatus.RETRACTED.value,
    "failing",
)


def items_link(**filters: str | None) -> str:
    """The item list (`/console/items`) filtered by `filters`: `department`, `domain`,
    `state`, `q`, `from`, `to` (the list's own query parameter names); None ones left out."""
    query = {name: value for name, value in filters.items() if value}
    return f"{ITEM_LIST}?{urlencode(query)}" if query else ITEM_LIST


def state_link(dimension: Dimension, code: str, column: str) -> str:
    """The item list of one figure: the row's department or domain (none: the total row) in
    the column's state."""
    return items_link(**{dimension: code or None, "state": column})


def figure(row: CountRow, column: str) -> int:
    return row.failing if column == "failing" else row.count(ItemStatus(column))


@dataclass(frozen=True)
class Table:
    """One table of the page: its rows and their sum, for departments or domains."""

    dimension: Dimension
    rows: list[CountRow]
    total: CountRow


def recent_start(today: date) -> date:
    """The first day (inclusive) of the last `RECENT_DAYS` days ending with `today`."""
    return today - timedelta(days=RECENT_DAYS - 1)


@router.get("/console/supervision")
def supervision_home(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    who.principal.require(Role.SUPERVISOR)
    zone = ZoneInfo(settings_of(request).timezone)
    since_day = recent_start(datetime.now(zone).date())
    since = datetime.combine(since_day, time.min, tzinfo=zone)
    with database_of(request).session() as session:
        tables = []
        for dimension in ("department", "domain"):
            rows = item_counts(session, dimension, published_since=since)
            tables.append(Table(dimension, rows, totals(rows)))
    return render(
        request,
        "supervision/home.html",
        {
            "tables": tables,
            "columns": COLUMNS,
            "figure": figure,
            "state_link": state_link,
            "recent_link": lambda code: items_link(
                department=code or None, **{"from": since_day.isoformat()}
            ),
            "since": since_day.isoformat(),
        },
        who=who,
    )
