"""The staff's item pages: the list with its filters, an item's page (its previews, its
actions by role, its timeline), and the actions themselves — submit, approve, send back,
publish, retract, mask — each done by the service the API route uses, in one transaction.

Who may do what is the services' decision (`Forbidden` → the 403 page); a refusal of bad
input (a finding blocking a submit, a channel refusing a publish, a send-back without a
reason) shows the item page again with the messages (422).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from publisher.api.routes_common import (
    ITEM_READERS,
    RowId,
    channel_pool,
    database_of,
    settings_of,
)
from publisher.console.item_form import problem_text
from publisher.console.preview import channel_name, preview_view
from publisher.console.timeline import any_open, item_events, revision_entries
from publisher.console.web import BEIJING, Viewer, redirect, render, viewer
from publisher.errors import InvalidInput
from publisher.models import ItemStatus, Role
from publisher.services import items as item_service
from publisher.services import queries, review
from publisher.services.channel_controls import build_adapters
from publisher.services.limits import CODE_MAX, REASON_MAX
from publisher.services.masking import mask_item
from publisher.services.publishing import item_preview, publish_checked
from publisher.services.queries import ItemFilter, Page
from publisher.services.scope import list_departments, list_domains

FAILING = "failing"  # not a status: items with a failed delivery (the supervisors' figure)
router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
Text = Annotated[str, Query(max_length=CODE_MAX * 4)]
Reason = Annotated[str, Form(max_length=REASON_MAX)]


def names(session: Session) -> dict[str, dict[str, str]]:
    """Chinese names of domains and departments by code."""
    return {
        "domains": {d.code: d.name for d in list_domains(session)},
        "departments": {d.code: d.name for d in list_departments(session)},
    }


def day_start(text: str) -> datetime | None:
    """Beijing midnight of the date `text` (YYYY-MM-DD), as an aware datetime."""
    try:
        return datetime.combine(date.fromisoformat(text), time(), BEIJING)
    except ValueError:
        return None


@router.get("/console/items")
def item_list(
    request: Request,
    view: Text = "",
    q: Text = "",
    status: Text = "",
    domain: Text = "",
    department: Text = "",
    created_from: Text = "",
    created_to: Text = "",
    published_from: Text = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    who: Viewer = Depends(viewer),
) -> HTMLResponse:
    """Items the viewer may see, newest first; `view=review` lists those waiting for review
    first. Filters: title or 索引号 (`q`), state (or `failing`: with a failed delivery),
    domain, department, creation dates, first published since (`published_from`)."""
    who.principal.require(*ITEM_READERS)
    errors: dict[str, str] = {}
    start = day_start(created_from) if created_from else None
    end = day_start(created_to) if created_to else None
    if created_from and start is None:
        errors["created_from"] = "bad_date"
    if created_to and end is None:
        errors["created_to"] = "bad_date"
    published = day_start(published_from) if published_from else None
    if published_from and published is None:
        errors["published_from"] = "bad_date"
    known_status = {s.value for s in ItemStatus}
    narrow = ItemFilter(
        status=status if status in known_status else None,
        domain=domain or None,
        department=department or None,
        search=q.strip() or None,
        created_from=start,
        created_before=end + timedelta(days=1) if end else None,
        waiting_first=view == "review",
        failing=status == FAILING,
        published_from=published,
    )
    with database_of(request).session() as session:
        found = queries.list_items(
            session,
            Page(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE),
            scope=who.principal.scope,
            narrow=narrow,
        )
        catalogue = names(session)
    filters = {
        "view": view,
        "q": q,
        "status": status,
        "domain": domain,
        "department": department,
        "created_from": created_from,
        "created_to": created_to,
        "published_from": published_from,
    }
    kept = {k: v for k, v in filters.items() if v}
    pages = max(1, -(-found["total"] // PAGE_SIZE))
    context = {
        "found": found,
        "filters": filters,
        "errors": errors,
        "names": catalogue,
        "statuses": [*(s.value for s in ItemStatus), FAILING],
        "page": page,
        "pages": pages,
        "page_url": lambda n: "/console/items?" + urlencode({**kept, "page": n}),
    }
    return render(request, "items/list.html", context, who=who)


def item_context(request: Request, who: Viewer, item_id: int) -> dict[str, Any]:
    """Everything the item page shows: the item, its previews, its timeline."""
    pool = channel_pool(request)
    build_adapters(pool)
    with database_of(request).session() as session:
        view = queries.item_view(session, item_id, scope=who.principal.scope)
        item = item_service.get_item(session, item_id)
        latest = item_service.latest_revision(session, item_id)
        shown = item_preview(session, settings_of(request), item, latest, pool)
        return {
            "item": view,
            "revision": latest,
            "domain": item.domain,
            "department": item.department,
            "preview": preview_view(shown, item, latest),
            "revisions": revision_entries(session, item_id),
            "events": item_events(session, item_id),
            "polling": any_open(view["deliveries"]),
            "channel_name": channel_name,
        }


def item_page(
    request: Request,
    who: Viewer,
    item_id: int,
    *,
    errors: dict[str, list[str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = item_context(request, who, item_id)
    context.update(errors=errors or {}, done=request.query_params.get("done"))
    return render(request, "items/item.html", context, who=who, status_code=status_code)


@router.get("/console/items/{item_id}")
def show_item(item_id: RowId, request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    who.principal.require(*ITEM_READERS)
    return item_page(request, who, item_id)


@router.get("/console/items/{item_id}/deliveries")
def item_deliveries(
    item_id: RowId, request: Request, who: Viewer = Depends(viewer)
) -> HTMLResponse:
    """The deliveries part of the item page (polled while a delivery has work ahead)."""
    who.principal.require(*ITEM_READERS)
    with database_of(request).session() as session:
        view = queries.item_view(session, item_id, scope=who.principal.scope)
    context = {"item": view, "polling": any_open(view["deliveries"]), "channel_name": channel_name}
    return render(request, "items/deliveries.html", context, who=who)


def act(
    request: Request,
    who: Viewer,
    item_id: int,
    action: Callable[[Session], object],
    done: str,
    *,
    field: str = "actions",
) -> Response:
    """Run `action` in one transaction; then the item page (`?done=…`), or the page again
    with the problems beside `field` when it refuses the input."""
    try:
        with database_of(request).session() as session:
            action(session)
    except InvalidInput as exc:
        errors = {field: [problem_text(p) for p in exc.problems]}
        return item_page(request, who, item_id, errors=errors, status_code=422)
    return redirect(f"/console/items/{item_id}?done={done}")


@router.post("/console/items/{item_id}/submit")
def submit(item_id: RowId, request: Request, who: Viewer = Depends(viewer)) -> Response:
    return act(
        request, who, item_id, lambda s: review.submit_item(s, item_id, who.principal), "submitted"
    )


@router.post("/console/items/{item_id}/approve")
def approve(
    item_id: RowId, request: Request, comment: Reason = "", who: Viewer = Depends(viewer)
) -> Response:
    return act(
        request,
        who,
        item_id,
        lambda s: review.approve_item(s, item_id, who.principal, comment.strip() or None),
        "approved",
        field="approve_comment",
    )


@router.post("/console/items/{item_id}/send-back")
def send_back(
    item_id: RowId, request: Request, comment: Reason = "", who: Viewer = Depends(viewer)
) -> Response:
    return act(
        request,
        who,
        item_id,
        lambda s: review.send_back_item(s, item_id, who.principal, comment),
        "sent_back",
        field="send_back_comment",
    )


@router.post("/console/items/{item_id}/publish")
def publish(item_id: RowId, request: Request, who: Viewer = Depends(viewer)) -> Response:
    """As `POST /api/v1/items/{id}/publish`: every channel's preflight, then publish."""
    who.principal.require(Role.EDITOR, Role.REVIEWER)
    pool = channel_pool(request)
    build_adapters(pool)

    def publish_locked(session: Session) -> None:
        locked = item_service.lock_item(session, item_id)
        who.principal.require_department(locked.item.department_code)
        principal = who.principal
        settings = settings_of(request)
        publish_checked(session, settings, locked, pool, actor=principal.actor, who=principal)

    return act(request, who, item_id, publish_locked, "published")


@router.post("/console/items/{item_id}/retract")
def retract(
    item_id: RowId, request: Request, reason: Reason = "", who: Viewer = Depends(viewer)
) -> Response:
    who.principal.require(Role.EDITOR)

    def retract_item(session: Session) -> None:
        item = item_service.get_item(session, item_id)
        who.principal.require_department(item.department_code)
        actor = who.principal.actor
        item_service.retract_item(session, item_id, actor=actor, reason=reason.strip() or None)

    return act(request, who, item_id, retract_item, "retracted", field="retract_reason")


@router.post("/console/items/{item_id}/mask")
def mask(
    item_id: RowId,
    request: Request,
    back: Annotated[str, Form(max_length=20)] = "",
    who: Viewer = Depends(viewer),
) -> Response:
    """As `POST /api/v1/items/{id}/mask`: a new revision with the personal data masked;
    back to the item page, or to the form (`back=edit`)."""
    who.principal.require(Role.EDITOR)
    pool = channel_pool(request)
    build_adapters(pool)

    def mask_saved(session: Session) -> None:
        item = item_service.get_item(session, item_id)
        who.principal.require_department(item.department_code)
        mask_item(session, settings_of(request), item_id, pool, actor=who.principal.actor)

    answer = act(request, who, item_id, mask_saved, "masked")
    if back == "edit" and answer.status_code == 303:
        return redirect(f"/console/items/{item_id}/edit?done=masked")
    return answer


__all__ = ["router"]
