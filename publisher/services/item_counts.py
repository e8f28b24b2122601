"""What the supervisors' home page counts: items per department and per domain by status,
items with a failed delivery, and items first published since a given time.

Every figure is a grouped count in SQL (one query per figure and dimension, whatever the
number of items); nothing here writes. Departments and domains come with their Chinese names;
the inactive ones are listed only while they still have items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from publisher.models import Delivery, DeliveryState, Department, Domain, Item, ItemStatus

Dimension = Literal["department", "domain"]
# A delivery in this state is one that needs a person: the item is "failing" on a channel.
FAILING = DeliveryState.FAILED


@dataclass(frozen=True)
class CountRow:
    """One department or domain: its items by status, how many of them have a failed
    delivery (`failing`), and how many were first published since the page's cut-off."""

    code: str
    name: str
    by_status: dict[ItemStatus, int] = field(default_factory=dict)
    failing: int = 0
    published_since: int = 0
    active: bool = True

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def count(self, status: ItemStatus) -> int:
        return self.by_status.get(status, 0)


def _grouping(dimension: Dimension) -> InstrumentedAttribute[str]:
    return Item.department_code if dimension == "department" else Item.domain_code


def _named(session: Session, dimension: Dimension) -> list[tuple[str, str, bool]]:
    """(code, Chinese name, active) of every department or domain, in display order."""
    if dimension == "department":
        return [
            (row.code, row.name, row.active)
            for row in session.execute(
                select(Department.code, Department.name, Department.active).order_by(
                    Department.code
                )
            )
        ]
    return [
        (row.code, row.name, row.active)
        for row in session.execute(
            select(Domain.code, Domain.name, Domain.active).order_by(Domain.catecode, Domain.code)
        )
    ]


def item_counts(
    session: Session, dimension: Dimension, *, published_since: datetime
) -> list[CountRow]:
    """One row per department (or domain), in display order, with its figures."""
    group = _grouping(dimension)
    by_status: dict[str, dict[ItemStatus, int]] = {}
    for code, status, n in session.execute(
        select(group, Item.status, func.count()).group_by(group, Item.status)
    ):
        by_status.setdefault(code, {})[ItemStatus(status)] = int(n)
    failing = {
        code: int(n)
        for code, n in session.execute(
            select(group, func.count(distinct(Item.id)))
            .join(Delivery, Delivery.item_id == Item.id)
            .where(Delivery.state == FAILING)
            .group_by(group)
        )
    }
    recent = {
        code: int(n)
        for code, n in session.execute(
            select(group, func.count()).where(Item.published_at >= published_since).group_by(group)
        )
    }
    return [
        CountRow(
            code=code,
            name=name,
            by_status=by_status.get(code, {}),
            failing=failing.get(code, 0),
            published_since=recent.get(code, 0),
            active=active,
        )
        for code, name, active in _named(session, dimension)
        if active or code in by_status
    ]


def totals(rows: list[CountRow]) -> CountRow:
    """The figures of `rows` added up (a department's items are counted once, so the sum over
    departments is the whole store's)."""
    by_status: dict[ItemStatus, int] = {}
    for row in rows:
        for status, n in row.by_status.items():
            by_status[status] = by_status.get(status, 0) + n
    return CountRow(
        code="",
        name="",
        by_status=by_status,
        failing=sum(row.failing for row in rows),
        published_since=sum(row.published_since for row in rows),
    )


__all__ = ["FAILING", "CountRow", "Dimension", "item_counts", "totals"]
