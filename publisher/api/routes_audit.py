"""The audit trail, for supervisors and admins: `GET /audit` with filters, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from publisher.api.routes_common import database_of, page, requires, settings_of
from publisher.audit_trail import AuditFilters, as_aware, list_audit
from publisher.auth import Principal
from publisher.models import Role
from publisher.services.limits import CODE_MAX, ID_MAX
from publisher.services.queries import Page

router = APIRouter(tags=["audit"])


@router.get("/audit")
def list_audit_events(
    request: Request,
    actor: str | None = Query(
        None, max_length=CODE_MAX, description="who acted, exactly (e.g. `cli:root`)"
    ),
    action: str | None = Query(
        None, max_length=CODE_MAX, description="action prefix: `item.` for every item action"
    ),
    item: int | None = Query(None, ge=1, le=ID_MAX, description="item id"),
    since: datetime | None = Query(None, description="ISO 8601, from (inclusive)"),
    until: datetime | None = Query(None, description="ISO 8601, to (exclusive)"),
    paging: Page = Depends(page),
    _: Principal = Depends(requires(Role.SUPERVISOR)),
) -> dict[str, Any]:
    """Audit rows with their chain hashes (`prev_hash`, `row_hash`), newest first. A time
    without an offset is taken in the organisation's time zone."""
    timezone = settings_of(request).timezone
    filters = AuditFilters(
        actor=actor,
        action=action,
        item=item,
        since=as_aware(since, timezone),
        until=as_aware(until, timezone),
    )
    with database_of(request).session() as session:
        return list_audit(session, filters, limit=paging.limit, offset=paging.offset)
