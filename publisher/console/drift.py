"""Drift between the store and the channels, for operators (`/console/drift`): the reports
with filters, a repair of one, and a check run now, as the API does them
(`publisher/api/routes_drift.py`): `reconcile.check_now`, `reconcile.repair_drift`, audited
alike. A check calls the channels while the operator waits, as `POST /drift/check` does; its
reports are shown on the page it answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from channels.registry import KINDS
from publisher.api.routes_common import channel_pool, database_of, settings_of
from publisher.console.operations import operator
from publisher.console.ops_forms import done_message, field_errors, whole_number
from publisher.console.web import Viewer, redirect, render
from publisher.delivery import reconcile
from publisher.delivery.reconcile import ReconcileReport
from publisher.errors import Conflict, InvalidInput, NotFound
from publisher.i18n import t
from publisher.models import DriftKind
from publisher.services import queries
from publisher.services.limits import ID_MAX, OFFSET_MAX
from publisher.services.queries import Page

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE = OFFSET_MAX // PAGE_SIZE  # deeper: narrow the filters (as the API says)
POLICIES = ("repair", "report")


@dataclass
class DriftFilters:
    show: str = "open"  # open | all
    channel: str = ""
    item: str = ""
    kind: str = ""
    page: int = 1
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **changes: Any) -> str:
        values = {
            "show": self.show,
            "channel": self.channel,
            "item": self.item,
            "kind": self.kind,
            "page": self.page,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


def read_filters(request: Request) -> DriftFilters:
    q = request.query_params
    page = q.get("page", "1")
    found = DriftFilters(
        show="all" if q.get("show") == "all" else "open",
        channel=q.get("channel", "").strip(),
        item=q.get("item", "").strip(),
        kind=q.get("kind", "").strip(),
        page=whole_number(page, MAX_PAGE) or 1,
    )
    if found.channel and found.channel not in KINDS:
        found.errors["channel"] = t("ops.filter.bad_channel")
    if found.item and whole_number(found.item, ID_MAX) is None:
        found.errors["item"] = t("ops.filter.bad_item")
    if found.kind and found.kind not in {k.value for k in DriftKind}:
        found.errors["kind"] = t("ops.drift.bad_kind")
    return found


def drift_page(
    request: Request,
    who: Viewer,
    *,
    reports: list[ReconcileReport] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    filters = read_filters(request)
    found: dict[str, Any] = {"total": 0, "results": []}
    if not filters.errors:
        with database_of(request).session() as session:
            found = queries.list_drift(
                session,
                Page(limit=PAGE_SIZE, offset=(filters.page - 1) * PAGE_SIZE),
                open_only=filters.show == "open",
                channel=filters.channel or None,
                item=int(filters.item) if filters.item else None,
                kind=filters.kind or None,
            )
    context = {
        "filters": filters,
        "rows": found["results"],
        "total": found["total"],
        "pages": max(1, -(-int(found["total"]) // PAGE_SIZE)),
        "kinds": KINDS,
        "drift_kinds": [k.value for k in DriftKind],
        "policies": POLICIES,
        "reports": reports,
        "errors": errors or {},
        "details": lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True),
        "done": done_message(
            request.query_params.get("done"), {"repaired": t("ops.done.repaired")}
        ),
    }
    if filters.errors and status_code == 200:
        status_code = 422
    return render(request, "ops/drift.html", context, status_code=status_code, who=who)


@router.get("/console/drift")
def drift(request: Request, who: Viewer = Depends(operator)) -> HTMLResponse:
    return drift_page(request, who)


@router.post("/console/drift/check")
def check(
    request: Request,
    channel: Annotated[str, Form()] = "",
    item: Annotated[str, Form()] = "",
    policy: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Look the channel's (or every channel's) live and withdrawn deliveries up now."""
    errors: dict[str, str] = {}
    item_id = whole_number(item.strip(), ID_MAX) if item.strip() else None
    if item.strip() and item_id is None:
        errors["check.item"] = t("ops.filter.bad_item")
    if policy and policy not in POLICIES:
        errors["check.policy"] = t("ops.drift.bad_policy")
    if errors:
        return drift_page(request, who, errors=errors, status_code=422)
    try:
        reports = reconcile.check_now(
            database_of(request),
            settings_of(request),
            channel_pool(request),
            channel=channel or None,
            item_id=item_id,
            policy=policy or None,
            actor=who.principal.actor,
        )
    except InvalidInput as exc:
        problems = {f"check.{name}": text for name, text in field_errors(exc).items()}
        return drift_page(request, who, errors=problems, status_code=422)
    except NotFound as exc:
        return drift_page(request, who, errors={"check.item": str(exc)}, status_code=422)
    return drift_page(request, who, reports=reports)


@router.post("/console/drift/{drift_id}/repair")
def repair(drift_id: int, request: Request, who: Viewer = Depends(operator)) -> Response:
    """Repair an open drift now: its delivery goes back to the engine."""
    if not 1 <= drift_id <= ID_MAX:
        raise NotFound(f"drift {drift_id} does not exist", zh=t("refusal.no_drift", id=drift_id))
    try:
        with database_of(request).session() as session:
            reconcile.repair_drift(session, drift_id, actor=who.principal.actor)
    except Conflict as exc:
        return drift_page(request, who, errors={f"repair.{drift_id}": str(exc)}, status_code=409)
    return redirect("/console/drift?done=repaired")
