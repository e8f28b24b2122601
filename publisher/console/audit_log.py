"""The audit log (`/console/audit`), for supervisors and admins: the trail `GET /api/v1/audit`
lists (`publisher.audit_trail.list_audit`), with the same filters — actor, action (a prefix),
item, a range of days in Beijing time — paged, newest first; and the chain check of
`publisher audit verify` (`verify_chain`) run on demand (`POST /console/audit/verify`), its
result shown in the page (htmx) or on a page of its own without script.

Filters are read from the query string by hand, so that a bad one re-renders the page with a
message beside its field (422), not FastAPI's JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from math import ceil
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import QueryParams

from publisher.api.routes_common import database_of, settings_of
from publisher.audit import ALTERED, GAP, GAP_AT_START, ChainReport
from publisher.audit_trail import AuditFilters, list_audit, verify_chain
from publisher.console.web import Viewer, beijing, render, viewer
from publisher.i18n import CATALOGUE, t
from publisher.models import Role, utcnow
from publisher.services.limits import CODE_MAX, ID_MAX, OFFSET_MAX

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
LAST_PAGE = OFFSET_MAX // PAGE_SIZE  # deeper pages: narrow the filters instead
BROKEN_REASONS = {
    GAP_AT_START: "audit.broken.gap_at_start",
    GAP: "audit.broken.gap",
    ALTERED: "audit.broken.altered",
}


@dataclass
class AuditQuery:
    """The page's filters as typed (`values`, shown back in the form), what they mean
    (`filters`), the page number, and a message per field that could not be read."""

    values: dict[str, str] = field(default_factory=dict)
    filters: AuditFilters = field(default_factory=AuditFilters)
    page: int = 1
    errors: dict[str, str] = field(default_factory=dict)

    def link(self, page: int) -> str:
        """This page's address with the same filters, at `page`."""
        query = {name: value for name, value in self.values.items() if value}
        if page > 1:
            query["page"] = str(page)
        return f"/console/audit?{urlencode(query)}" if query else "/console/audit"


def _text(params: QueryParams, name: str, errors: dict[str, str]) -> str | None:
    value = params.get(name, "").strip()
    if len(value) > CODE_MAX:
        errors[name] = t("audit.too_long", max=CODE_MAX)
        return None
    return value or None


def _day(params: QueryParams, name: str, errors: dict[str, str]) -> date | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = t("audit.bad_date")
        return None


def _item(params: QueryParams, errors: dict[str, str]) -> int | None:
    value = params.get("item", "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= ID_MAX:
        errors["item"] = t("audit.bad_item")
        return None
    return int(value)


def read_query(params: QueryParams, timezone: str) -> AuditQuery:
    """The filters of the query string: `actor`, `action`, `item`, `from` and `to` (days,
    both included, in `timezone`), `page`. A page out of range is read as the nearest one."""
    errors: dict[str, str] = {}
    actor, action = _text(params, "actor", errors), _text(params, "action", errors)
    item = _item(params, errors)
    first, last = _day(params, "from", errors), _day(params, "to", errors)
    if first and last and last < first:
        errors["to"] = t("audit.bad_range")
    zone = ZoneInfo(timezone)
    filters = AuditFilters(
        actor=actor,
        action=action,
        item=item,
        since=datetime.combine(first, time.min, tzinfo=zone) if first else None,
        until=datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone) if last else None,
    )
    page = params.get("page", "1")
    number = int(page) if page.isdigit() and len(page) < 10 else 1
    names = ("actor", "action", "item", "from", "to")
    return AuditQuery(
        values={name: params.get(name, "").strip()[:200] for name in names},
        filters=filters,
        page=max(1, min(number, LAST_PAGE)),
        errors=errors,
    )


def action_name(code: str) -> str:
    """The action's Chinese name, or its code when it has none."""
    return CATALOGUE.get(f"audit.action.{code}", code)


def detail_text(value: Any) -> str:
    """A detail's value as staff read it: text as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def chain_message(report: ChainReport) -> str:
    broken = report.broken
    if broken is None:
        if report.checked == 0:
            return t("audit.chain_empty")
        return t("audit.chain_ok", checked=report.checked)
    reason = BROKEN_REASONS.get(broken.reason)
    return t(
        "audit.chain_broken",
        row=broken.row_id,
        at=beijing(broken.at, with_seconds=True),
        action=action_name(broken.action or "?"),
        reason=t(reason) if reason else broken.reason,
        checked=report.checked,
    )


def audit_page(
    request: Request, who: Viewer, *, chain: dict[str, Any] | None = None
) -> HTMLResponse:
    query = read_query(request.query_params, settings_of(request).timezone)
    listing: dict[str, Any] = {"total": 0, "results": []}
    if not query.errors:
        with database_of(request).session() as session:
            listing = list_audit(
                session,
                query.filters,
                limit=PAGE_SIZE,
                offset=(query.page - 1) * PAGE_SIZE,
            )
    pages = max(1, ceil(listing["total"] / PAGE_SIZE))
    return render(
        request,
        "supervision/audit.html",
        {
            "query": query,
            "rows": listing["results"],
            "total": listing["total"],
            "pages": min(pages, LAST_PAGE),
            "action_name": action_name,
            "detail_text": detail_text,
            "chain": chain,
        },
        status_code=422 if query.errors else 200,
        who=who,
    )


@router.get("/console/audit")
def audit_log(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    who.principal.require(Role.SUPERVISOR)
    return audit_page(request, who)


@router.post("/console/audit/verify")
def verify_audit_chain(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    """Walk the whole chain now; the result as a fragment for htmx, else the audit page."""
    who.principal.require(Role.SUPERVISOR)
    report = verify_chain(database_of(request))
    chain = {
        "holds": report.broken is None,
        "message": chain_message(report),
        "checked_at": utcnow(),
    }
    if request.headers.get("HX-Request"):
        return render(request, "supervision/chain.html", {"chain": chain}, who=who)
    return audit_page(request, who, chain=chain)
