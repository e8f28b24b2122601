"""Drift between the store and the channels (issue 5): list it, check now, repair one."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from publisher.api.routes_common import (
    READERS,
    CodeFilter,
    RowId,
    RowIdFilter,
    channel_pool,
    database_of,
    page,
    requires,
    settings_of,
)
from publisher.auth import Principal
from publisher.delivery import reconcile
from publisher.models import Drift, Role
from publisher.services import queries
from publisher.services.limits import CODE_MAX, ID_MAX
from publisher.services.queries import Page

router = APIRouter(tags=["drift"])


class DriftCheckIn(BaseModel):
    """What to check now: one channel or all, optionally one item only."""

    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(default=None, max_length=CODE_MAX)
    item: int | None = Field(default=None, ge=1, le=ID_MAX)
    policy: Literal["repair", "report"] | None = Field(
        default=None, description="default: the configured reconcile_policy"
    )


@router.get("/drift")
def list_drift(
    request: Request,
    open: bool = True,
    channel: CodeFilter = None,
    item: RowIdFilter = None,
    kind: CodeFilter = None,
    paging: Page = Depends(page),
    who: Principal = Depends(requires(*READERS)),
) -> dict[str, Any]:
    """Drift found by reconciliation, newest first: open only unless `open=false`
    (editors and reviewers: of their departments' items only)."""
    with database_of(request).session() as session:
        return queries.list_drift(
            session, paging, open_only=open, channel=channel, item=item, kind=kind, scope=who.scope
        )


@router.post("/drift/check")
def check_drift(
    request: Request,
    body: DriftCheckIn | None = None,
    who: Principal = Depends(requires(Role.OPERATOR)),
) -> dict[str, Any]:
    """Look the channel's (or every channel's) live and withdrawn deliveries up now; answer
    each channel's report. Repairs go to the workers after the check commits."""
    body = body or DriftCheckIn()
    reports = reconcile.check_now(
        database_of(request),
        settings_of(request),
        channel_pool(request),
        channel=body.channel,
        item_id=body.item,
        policy=body.policy,
        actor=who.actor,
    )
    return {"reports": [r.as_dict() for r in reports]}


@router.post("/drift/{drift_id}/repair", status_code=202)
def repair(
    drift_id: RowId, request: Request, who: Principal = Depends(requires(Role.OPERATOR))
) -> dict[str, Any]:
    """Repair an open drift now (e.g. one recorded under the policy "report"); 409 if it is
    resolved or its delivery has moved on."""
    with database_of(request).session() as session:
        drift: Drift = reconcile.repair_drift(session, drift_id, actor=who.actor)
        session.flush()
        return queries.drift_view(drift)
