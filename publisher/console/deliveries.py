"""Deliveries for operators: the table with filters (`/console/deliveries`) and one
delivery's page with every attempt (`/console/deliveries/{id}`), the channel's own error
code and message shown unchanged beside our explanation; retry, cancel, adopt a post, mark
it posted, as the API does them (`publisher/api/routes_deliveries.py`), audited alike.

While a delivery is not settled its page polls its state and attempts (htmx), so an operator
who retried it sees it go live. A refused action (the service's `Conflict` or
`InvalidInput`) shows on the page beside the form that asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from channels.registry import KINDS
from publisher.api.routes_common import channel_pool, database_of, settings_of
from publisher.console.operations import live_fragment, operator
from publisher.console.ops_forms import (
    CONFIRMED,
    checked_text,
    confirm_page,
    done_message,
    field_errors,
    whole_number,
)
from publisher.console.web import BEIJING, Viewer, redirect, render
from publisher.delivery.adopt import ADOPTABLE, adopt_post, mark_posted
from publisher.delivery.ops import CANCELLABLE, cancel_delivery, retry_delivery
from publisher.errors import Conflict, FieldProblem, InvalidInput, NotFound
from publisher.i18n import t
from publisher.i18n.problems import zh
from publisher.models import SETTLED_STATES, DeliveryState, Department
from publisher.services import queries
from publisher.services.limits import (
    CODE_MAX,
    ID_MAX,
    OFFSET_MAX,
    REASON_MAX,
    REMOTE_ID_MAX,
    URL_MAX,
)
from publisher.services.queries import Page

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE = OFFSET_MAX // PAGE_SIZE  # deeper: narrow the filters (as the API says)
POLL = "every 3s"
NOT_RETRYABLE = (DeliveryState.RUNNING, DeliveryState.LIVE, DeliveryState.WITHDRAWN)


@dataclass
class Filters:
    """The list's filters as the form sent them (kept for the form and the pager), and the
    problems of those that are not valid (each shown beside its field)."""

    channel: str = ""
    state: str = ""
    item: str = ""
    department: str = ""
    since: str = ""
    until: str = ""
    page: int = 1
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **changes: Any) -> str:
        values = {
            "channel": self.channel,
            "state": self.state,
            "item": self.item,
            "department": self.department,
            "since": self.since,
            "until": self.until,
            "page": self.page,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


def read_filters(request: Request) -> Filters:
    q = request.query_params
    page = q.get("page", "1")
    found = Filters(
        channel=q.get("channel", "").strip(),
        state=q.get("state", "").strip(),
        item=q.get("item", "").strip(),
        department=q.get("department", "").strip()[: CODE_MAX + 1],
        since=q.get("since", "").strip(),
        until=q.get("until", "").strip(),
        page=whole_number(page, MAX_PAGE) or 1,
    )
    if found.channel and found.channel not in KINDS:
        found.errors["channel"] = t("ops.filter.bad_channel")
    if found.state and found.state not in {s.value for s in DeliveryState}:
        found.errors["state"] = t("ops.filter.bad_state")
    if found.item and whole_number(found.item, ID_MAX) is None:
        found.errors["item"] = t("ops.filter.bad_item")
    if len(found.department) > CODE_MAX:
        found.errors["department"] = t("ops.form.too_long", n=CODE_MAX)
    for name in ("since", "until"):
        if getattr(found, name) and _day(getattr(found, name)) is None:
            found.errors[name] = t("ops.filter.bad_date")
    return found


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _start_of(day: date) -> datetime:
    """00:00 of `day` in Beijing, as UTC."""
    return datetime.combine(day, time(), BEIJING).astimezone(UTC)


@router.get("/console/deliveries")
def deliveries(request: Request, who: Viewer = Depends(operator)) -> HTMLResponse:
    filters = read_filters(request)
    since, until = _day(filters.since), _day(filters.until)
    with database_of(request).session() as session:
        departments: dict[str, str] = {
            code: name
            for code, name in session.execute(
                select(Department.code, Department.name).order_by(Department.code)
            )
        }
        found: dict[str, Any] = {"total": 0, "results": []}
        if not filters.errors:
            found = queries.list_deliveries(
                session,
                Page(limit=PAGE_SIZE, offset=(filters.page - 1) * PAGE_SIZE),
                state=filters.state or None,
                channel=filters.channel or None,
                item=int(filters.item) if filters.item else None,
                department=filters.department or None,
                changed_from=_start_of(since) if since else None,
                changed_before=_start_of(until + timedelta(days=1)) if until else None,
            )
        owners = queries.departments_of_items(session, (d["item_id"] for d in found["results"]))
    pages = max(1, -(-int(found["total"]) // PAGE_SIZE))
    context = {
        "filters": filters,
        "rows": found["results"],
        "total": found["total"],
        "pages": pages,
        "owners": owners,
        "departments": departments,
        "kinds": KINDS,
        "states": [s.value for s in DeliveryState],
    }
    status = 422 if filters.errors else 200
    return render(request, "ops/deliveries.html", context, status_code=status, who=who)


# -- one delivery ---------------------------------------------------------------------------


def done_messages() -> dict[str, str]:
    return {
        "retried": t("ops.done.retried"),
        "cancelled": t("ops.done.cancelled"),
        "adopted": t("ops.done.adopted"),
        "marked": t("ops.done.marked"),
    }


def delivery_context(request: Request, delivery_id: int) -> dict[str, Any]:
    with database_of(request).session() as session:
        view = queries.delivery_detail(session, delivery_id)
        department = queries.departments_of_items(session, [view["item_id"]]).get(view["item_id"])
    state = DeliveryState(view["state"])
    present = bool(view["desired_present"])
    return {
        "d": view,
        "department": department,
        "settled": state in SETTLED_STATES,
        "can_retry": state not in NOT_RETRYABLE,
        "can_cancel": present and state in CANCELLABLE,
        "can_adopt": present and state in ADOPTABLE,
        "poll": POLL,
    }


def delivery_page(
    request: Request,
    who: Viewer,
    delivery_id: int,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = delivery_context(request, delivery_id)
    context.update(live_parts(context))
    context["errors"] = errors or {}
    context["done"] = done_message(request.query_params.get("done"), done_messages())
    return render(request, "ops/delivery.html", context, status_code=status_code, who=who)


@router.get("/console/deliveries/{delivery_id}")
def delivery(delivery_id: int, request: Request, who: Viewer = Depends(operator)) -> HTMLResponse:
    return delivery_page(request, who, _bounded(delivery_id))


@router.get("/console/deliveries/{delivery_id}/live")
def delivery_live(
    delivery_id: int, request: Request, seen: str = "", who: Viewer = Depends(operator)
) -> Response:
    """The delivery's state and attempts; 204 when they are what the page shows."""
    context = delivery_context(request, _bounded(delivery_id))
    context.update(live_parts(context))
    if seen == context["digest"]:
        return Response(status_code=204)
    return render(request, "ops/delivery_poll.html", context, who=who)


def live_parts(context: dict[str, Any]) -> dict[str, Any]:
    """The delivery's state (announced when it changes) and its attempts (swapped with it,
    out of band, not read aloud), and their digest."""
    state, state_digest = live_fragment("ops/delivery_state.html", context)
    attempts, attempts_digest = live_fragment("ops/delivery_attempts.html", context)
    return {"state": state, "attempts": attempts, "digest": state_digest + attempts_digest}


def _bounded(delivery_id: int) -> int:
    """A row id as the database holds them; beyond, the 404 page rather than a driver error."""
    if not 1 <= delivery_id <= ID_MAX:
        raise NotFound(
            f"delivery {delivery_id} does not exist",
            zh=t("refusal.no_delivery", id=delivery_id),
        )
    return delivery_id


def _refused(
    request: Request, who: Viewer, delivery_id: int, form: str, exc: Exception
) -> HTMLResponse:
    if isinstance(exc, InvalidInput):
        errors = {f"{form}.{name}": text for name, text in field_errors(exc).items()}
        errors[form] = "；".join(zh(p) for p in exc.problems)
        return delivery_page(request, who, delivery_id, errors=errors, status_code=422)
    return delivery_page(request, who, delivery_id, errors={form: str(exc)}, status_code=409)


@router.post("/console/deliveries/{delivery_id}/retry")
def retry(delivery_id: int, request: Request, who: Viewer = Depends(operator)) -> Response:
    """Start a failed, deferred or cancelled delivery again, with a new failure budget."""
    delivery_id = _bounded(delivery_id)
    try:
        with database_of(request).session() as session:
            retry_delivery(session, delivery_id, actor=who.principal.actor)
    except Conflict as exc:
        return _refused(request, who, delivery_id, "retry", exc)
    return redirect(f"/console/deliveries/{delivery_id}?done=retried")


@router.post("/console/deliveries/{delivery_id}/cancel")
def cancel(
    delivery_id: int,
    request: Request,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Stop working on the delivery (after a confirmation)."""
    delivery_id = _bounded(delivery_id)
    try:
        text = checked_text("reason", reason, max_length=REASON_MAX)
        if confirm != CONFIRMED:
            here = f"/console/deliveries/{delivery_id}"
            return confirm_page(
                request,
                who,
                question=t("ops.confirm.cancel", id=delivery_id),
                action=request.url.path,
                values={"reason": text},
                back=here,
            )
        with database_of(request).session() as session:
            cancel_delivery(session, delivery_id, actor=who.principal.actor, reason=text or None)
    except (Conflict, InvalidInput) as exc:
        return _refused(request, who, delivery_id, "cancel", exc)
    return redirect(f"/console/deliveries/{delivery_id}?done=cancelled")


@router.post("/console/deliveries/{delivery_id}/adopt")
def adopt(
    delivery_id: int,
    request: Request,
    remote_id: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Take post `remote_id` as the delivery's copy once the channel shows it there."""
    delivery_id = _bounded(delivery_id)
    try:
        post = checked_text(
            "remote_id", remote_id, max_length=REMOTE_ID_MAX, required=True, plain=True
        )
        adopt_post(
            database_of(request),
            settings_of(request),
            channel_pool(request),
            delivery_id,
            post,
            actor=who.principal.actor,
        )
    except (Conflict, InvalidInput) as exc:
        return _refused(request, who, delivery_id, "adopt", exc)
    return redirect(f"/console/deliveries/{delivery_id}?done=adopted")


@router.post("/console/deliveries/{delivery_id}/mark-posted")
def posted(
    delivery_id: int,
    request: Request,
    reason: Annotated[str, Form()] = "",
    remote_id: Annotated[str, Form()] = "",
    url: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Record the delivery live on the operator's word, with a reason (after a confirmation)."""
    delivery_id = _bounded(delivery_id)
    try:
        problems: list[FieldProblem] = []
        values: dict[str, str] = {}
        for name, value, limit, required in (
            ("reason", reason, REASON_MAX, True),
            ("remote_id", remote_id, REMOTE_ID_MAX, False),
            ("url", url, URL_MAX, False),
        ):
            try:
                values[name] = checked_text(
                    name, value, max_length=limit, required=required, plain=name != "reason"
                )
            except InvalidInput as exc:
                problems.extend(exc.problems)
        if problems:
            raise InvalidInput(problems)
        if confirm != CONFIRMED:
            return confirm_page(
                request,
                who,
                question=t("ops.confirm.mark_posted", id=delivery_id, reason=values["reason"]),
                action=request.url.path,
                values=values,
                back=f"/console/deliveries/{delivery_id}",
            )
        with database_of(request).session() as session:
            mark_posted(
                session,
                delivery_id,
                reason=values["reason"],
                remote_id=values["remote_id"] or None,
                url=values["url"] or None,
                actor=who.principal.actor,
            )
    except (Conflict, InvalidInput) as exc:
        return _refused(request, who, delivery_id, "mark", exc)
    return redirect(f"/console/deliveries/{delivery_id}?done=marked")
