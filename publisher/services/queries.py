"""Read models: what the API and the CLI show of items, deliveries, attempts and drift.

Plain JSON-ready dicts built from the store; nothing here writes. The delivery view carries the
channel's own error text verbatim next to our plain-words explanation.

Department scoping: every read of items and what hangs off them (deliveries, attempts, drift)
takes a `scope`, the departments the caller may see (`Principal.scope`; None: every one).
Lists leave the others' rows out; a single object of another department is refused
(`Forbidden`), as an edit of it would be.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from channels.registry import KINDS
from publisher.errors import FieldProblem, Forbidden, InvalidInput, NotFound
from publisher.i18n import t
from publisher.i18n.refusals import department_refusal
from publisher.models import (
    Approval,
    Attempt,
    Delivery,
    DeliveryState,
    Drift,
    DriftKind,
    Item,
    ItemStatus,
    Revision,
)
from publisher.services.deadlines import deadlines
from publisher.services.review import item_approvals, review_fields


@dataclass(frozen=True)
class Page:
    limit: int = 50
    offset: int = 0


# The departments a caller may see; None: every department.
Scope = Collection[str] | None


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def check_scope(department: str, scope: Scope) -> None:
    """Raise `Forbidden` unless an item of `department` is within `scope`."""
    if scope is not None and department not in scope:
        raise Forbidden(
            f"this item belongs to department {department!r}; "
            f"your account is limited to {', '.join(scope) or 'no department'}",
            zh=department_refusal(department, scope),
        )


def item_in_scope(session: Session, item_id: int, scope: Scope) -> Item:
    """The item, if the caller may see it. Raises `NotFound`, `Forbidden`."""
    item = session.get(Item, item_id)
    if item is None:
        raise NotFound(f"item {item_id} does not exist", zh=t("refusal.no_item", id=item_id))
    check_scope(item.department_code, scope)
    return item


def revision_view(rev: Revision, *, full: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": rev.id,
        "number": rev.number,
        "title": rev.title,
        "content_hash": rev.content_hash,
        "created_by": rev.created_by,
        "created_at": iso(rev.created_at),
    }
    if full:
        view.update(
            short_title=rev.short_title,
            short_titles=dict(rev.short_titles or {}),
            wechat_digest=rev.wechat_digest,
            summary=rev.summary,
            body_html=rev.body_html,
            body_markdown=rev.body_markdown,
            keywords=list(rev.keywords or []),
            doc_number=rev.doc_number,
            formed_on=rev.formed_on.isoformat(),
            cover_image=rev.cover_image,
        )
    return view


def last_error(
    kind: str | None, code: str | None, message: str | None, explanation: str | None
) -> dict[str, Any] | None:
    if kind is None and message is None:
        return None
    return {"kind": kind, "code": code, "message": message, "explanation": explanation}


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "item_id": delivery.item_id,
        "channel": delivery.channel_kind,
        "state": delivery.state.value,
        "desired_present": delivery.desired_present,
        "desired_revision_id": delivery.desired_revision_id,
        "applied_revision_id": delivery.applied_revision_id,
        "remote_id": delivery.remote_id,
        "url": delivery.remote_url,
        "attempts": delivery.attempt_count,
        "last_error": last_error(
            delivery.last_error_kind,
            delivery.last_error_code,
            delivery.last_error_message,
            delivery.explanation,
        ),
        "explanation": delivery.explanation,
        "wait_reason": delivery.wait_reason,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "live_at": iso(delivery.live_at),
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
    }


def attempt_view(a: Attempt, channel: str | None = None) -> dict[str, Any]:
    view = {
        "id": a.id,
        "delivery_id": a.delivery_id,
        "number": a.number,
        "action": a.action,
        "revision_id": a.revision_id,
        "worker": a.worker,
        "started_at": iso(a.started_at),
        "finished_at": iso(a.finished_at),
        "outcome": a.outcome.value,
        "error": last_error(a.error_kind, a.error_code, a.error_message, a.explanation),
        "http_status": a.http_status,
        "duration_ms": a.duration_ms,
    }
    if channel is not None:
        view["channel"] = channel
    return view


def item_summary(item: Item, latest: Revision | None) -> dict[str, Any]:
    return {
        "id": item.id,
        "status": item.status.value,
        "title": latest.title if latest else None,
        "domain": item.domain_code,
        "department": item.department_code,
        "index_no": item.index_no,
        "channels": list(item.channels or []),
        "push": None if item.push_tags is None else list(item.push_tags),
        "urgent": item.urgent,
        "post_review_pending": item.post_review_pending,
        "created_by": item.created_by,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "published_at": iso(item.published_at),
        "retracted_at": iso(item.retracted_at),
    }


def item_view(session: Session, item_id: int, *, scope: Scope = None) -> dict[str, Any]:
    """The item, its latest revision, its revisions and one delivery per channel.
    Raises `NotFound`, `Forbidden` (outside `scope`)."""
    item = item_in_scope(session, item_id, scope)
    revisions = list(
        session.scalars(
            select(Revision).where(Revision.item_id == item_id).order_by(Revision.number)
        )
    )
    deliveries = session.scalars(
        select(Delivery).where(Delivery.item_id == item_id).order_by(Delivery.id)
    )
    view = item_view_of(item, revisions, deliveries, item_approvals(session, item_id))
    return with_deadlines(session, [item], {item.id: revisions[-1]} if revisions else {}, [view])[0]


def with_deadlines(
    session: Session,
    items: Sequence[Item],
    latest: dict[int, Revision],
    views: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """`views` (of `items`, in that order) with each one's deadline fields (DESIGN §6.1:
    `due_on`, `timeliness`, `days_late`, `calendar_confirmed`; None without a revision)."""
    found = deadlines(session, items, latest)
    for item, view in zip(items, views, strict=True):
        deadline = found.get(item.id)
        view.update(
            deadline.fields()
            if deadline
            else dict.fromkeys(("due_on", "timeliness", "days_late", "calendar_confirmed"))
        )
    return views


def item_view_of(
    item: Item,
    revisions: Sequence[Revision],
    deliveries: Iterable[Delivery],
    approvals: Sequence[Approval] = (),
) -> dict[str, Any]:
    """`item_view` of what the caller already loaded: `revisions` oldest first, the item's
    deliveries (shown in the order they were created) and its approvals (oldest first)."""
    latest = revisions[-1] if revisions else None
    ordered = sorted(deliveries, key=lambda delivery: delivery.id)
    view = item_summary(item, latest)
    view["revision"] = revision_view(latest) if latest else None
    view["revisions"] = [revision_view(r, full=False) for r in revisions]
    view["deliveries"] = [delivery_view(delivery) for delivery in ordered]
    view.update(review_fields(item, revisions, approvals, ordered))
    return view


def _page(session: Session, stmt: Select[Any], page: Page) -> tuple[int, list[Any]]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.limit(page.limit).offset(page.offset)))
    return int(total), rows


@dataclass(frozen=True)
class ItemFilter:
    """What an item list is narrowed to (None: any). `search` matches the latest title or
    the 索引号 (any case); `created_from`/`created_before` bound when the item was made;
    `waiting_first` lists items waiting for review (submitted) before the others; `failing`:
    only items with a failed delivery; `published_from`: first published since then."""

    status: str | None = None
    domain: str | None = None
    department: str | None = None
    search: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    waiting_first: bool = False
    failing: bool = False
    published_from: datetime | None = None


def list_items(
    session: Session,
    page: Page,
    *,
    status: str | None = None,
    domain: str | None = None,
    department: str | None = None,
    scope: Scope = None,
    narrow: ItemFilter | None = None,
) -> dict[str, Any]:
    """Items of the departments in `scope`, newest first, with their latest titles."""
    narrow = narrow or ItemFilter(status=status, domain=domain, department=department)
    order: list[ColumnElement[Any]] = [Item.id.desc()]
    if narrow.waiting_first:
        order.insert(0, case((Item.status == ItemStatus.SUBMITTED, 0), else_=1))
    stmt = select(Item).order_by(*order)
    if scope is not None:
        stmt = stmt.where(Item.department_code.in_(list(scope)))
    if narrow.status:
        stmt = stmt.where(Item.status == narrow.status)
    if narrow.domain:
        stmt = stmt.where(Item.domain_code == narrow.domain)
    if narrow.department:
        stmt = stmt.where(Item.department_code == narrow.department)
    if narrow.search:
        stmt = stmt.where(
            Item.index_no.icontains(narrow.search, autoescape=True)
            | Item.id.in_(_titled(narrow.search))
        )
    if narrow.created_from is not None:
        stmt = stmt.where(Item.created_at >= narrow.created_from)
    if narrow.created_before is not None:
        stmt = stmt.where(Item.created_at < narrow.created_before)
    if narrow.failing:
        failed = select(Delivery.item_id).where(Delivery.state == DeliveryState.FAILED)
        stmt = stmt.where(Item.id.in_(failed))
    if narrow.published_from is not None:
        stmt = stmt.where(Item.published_at >= narrow.published_from)
    total, items = _page(session, stmt, page)
    latest = _latest_revisions(session, [i.id for i in items])
    return {
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "results": with_deadlines(
            session, items, latest, [item_summary(i, latest.get(i.id)) for i in items]
        ),
    }


def _titled(text: str) -> Select[Any]:
    """The ids of items whose latest revision's title contains `text`."""
    newest = (
        select(Revision.item_id, func.max(Revision.number).label("n"))
        .group_by(Revision.item_id)
        .subquery()
    )
    return (
        select(Revision.item_id)
        .join(newest, (Revision.item_id == newest.c.item_id) & (Revision.number == newest.c.n))
        .where(Revision.title.icontains(text, autoescape=True))
    )


def _latest_revisions(session: Session, item_ids: list[int]) -> dict[int, Revision]:
    if not item_ids:
        return {}
    newest = (
        select(Revision.item_id, func.max(Revision.number).label("n"))
        .where(Revision.item_id.in_(item_ids))
        .group_by(Revision.item_id)
        .subquery()
    )
    revs = session.scalars(
        select(Revision).join(
            newest, (Revision.item_id == newest.c.item_id) & (Revision.number == newest.c.n)
        )
    )
    return {r.item_id: r for r in revs}


def list_deliveries(
    session: Session,
    page: Page,
    *,
    state: str | None = None,
    channel: str | None = None,
    item: int | None = None,
    scope: Scope = None,
    department: str | None = None,
    changed_from: datetime | None = None,
    changed_before: datetime | None = None,
) -> dict[str, Any]:
    """Deliveries of items in `scope`, most recently changed first; optionally only those of
    `department`'s items, or last changed in [`changed_from`, `changed_before`)."""
    stmt = select(Delivery).order_by(Delivery.updated_at.desc(), Delivery.id.desc())
    if scope is not None or department:
        stmt = stmt.join(Item, Delivery.item_id == Item.id)
    if scope is not None:
        stmt = stmt.where(Item.department_code.in_(list(scope)))
    if department:
        stmt = stmt.where(Item.department_code == department)
    if changed_from is not None:
        stmt = stmt.where(Delivery.updated_at >= changed_from)
    if changed_before is not None:
        stmt = stmt.where(Delivery.updated_at < changed_before)
    if state:
        stmt = stmt.where(Delivery.state == state)
    if channel:
        stmt = stmt.where(Delivery.channel_kind == channel)
    if item is not None:
        stmt = stmt.where(Delivery.item_id == item)
    total, rows = _page(session, stmt, page)
    return {
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "results": [delivery_view(delivery) for delivery in rows],
    }


def departments_of_items(session: Session, item_ids: Iterable[int]) -> dict[int, str]:
    """Each item's department code (for lists of deliveries, which carry item ids only)."""
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rows = session.execute(select(Item.id, Item.department_code).where(Item.id.in_(ids)))
    return {item_id: code for item_id, code in rows}


def delivery_detail(session: Session, delivery_id: int, *, scope: Scope = None) -> dict[str, Any]:
    """A delivery with all its attempts, newest first. Raises `NotFound`, `Forbidden`."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(
            f"delivery {delivery_id} does not exist", zh=t("refusal.no_delivery", id=delivery_id)
        )
    if scope is not None:
        item_in_scope(session, delivery.item_id, scope)
    view = delivery_view(delivery)
    view["attempt_log"] = [
        attempt_view(a)
        for a in session.scalars(
            select(Attempt).where(Attempt.delivery_id == delivery.id).order_by(Attempt.id.desc())
        )
    ]
    return view


def item_attempts(session: Session, item_id: int, *, scope: Scope = None) -> list[dict[str, Any]]:
    """Every attempt on every channel for an item, newest first. Raises `NotFound`,
    `Forbidden`."""
    item_in_scope(session, item_id, scope)
    rows = session.execute(
        select(Attempt, Delivery.channel_kind)
        .join(Delivery, Attempt.delivery_id == Delivery.id)
        .where(Delivery.item_id == item_id)
        .order_by(Attempt.id.desc())
    )
    return [attempt_view(a, kind) for a, kind in rows]


def item_of_delivery(session: Session, delivery_id: int) -> Item:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(
            f"delivery {delivery_id} does not exist", zh=t("refusal.no_delivery", id=delivery_id)
        )
    item = session.get(Item, delivery.item_id)
    assert item is not None
    return item


def counts_by_state(session: Session) -> dict[str, dict[str, int]]:
    """Deliveries per channel kind and state (every known kind present, maybe empty)."""
    counts: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    rows = session.execute(
        select(Delivery.channel_kind, Delivery.state, func.count()).group_by(
            Delivery.channel_kind, Delivery.state
        )
    )
    for kind, state, n in rows:
        counts.setdefault(kind, {})[DeliveryState(state).value] = int(n)
    return counts


def drift_view(drift: Drift) -> dict[str, Any]:
    return {
        "id": drift.id,
        "delivery_id": drift.delivery_id,
        "item_id": drift.item_id,
        "channel": drift.channel_kind,
        "kind": drift.kind.value,
        "open": drift.resolved_at is None,
        "resolution": drift.resolution.value,
        "detected_at": iso(drift.detected_at),
        "last_seen_at": iso(drift.last_seen_at),
        "times_seen": drift.times_seen,
        "resolved_at": iso(drift.resolved_at),
        "details": drift.details,
    }


def list_drift(
    session: Session,
    page: Page,
    *,
    open_only: bool = True,
    channel: str | None = None,
    item: int | None = None,
    kind: str | None = None,
    scope: Scope = None,
) -> dict[str, Any]:
    """Drift of items in `scope`, most recently detected first; open only unless
    `open_only` is False."""
    stmt = select(Drift).order_by(Drift.detected_at.desc(), Drift.id.desc())
    if scope is not None:
        stmt = stmt.join(Item, Drift.item_id == Item.id).where(
            Item.department_code.in_(list(scope))
        )
    if open_only:
        stmt = stmt.where(Drift.resolved_at.is_(None))
    if channel:
        stmt = stmt.where(Drift.channel_kind == channel)
    if item is not None:
        stmt = stmt.where(Drift.item_id == item)
    if kind:
        if kind not in {k.value for k in DriftKind}:
            known = ", ".join(k.value for k in DriftKind)
            raise InvalidInput(
                [
                    FieldProblem(
                        "kind",
                        "known",
                        f"unknown drift kind {kind!r}; known: {known}",
                        values={"value": kind, "choices": [k.value for k in DriftKind]},
                    )
                ]
            )
        stmt = stmt.where(Drift.kind == DriftKind(kind))
    total, rows = _page(session, stmt, page)
    return {
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "results": [drift_view(drift) for drift in rows],
    }


def open_drift_for_item(session: Session, item_id: int) -> list[dict[str, Any]]:
    """The item's open drift, one entry per channel that has some (for `GET /items/{id}`)."""
    rows = session.scalars(
        select(Drift)
        .where(Drift.item_id == item_id, Drift.resolved_at.is_(None))
        .order_by(Drift.channel_kind)
    )
    return [drift_view(drift) for drift in rows]
