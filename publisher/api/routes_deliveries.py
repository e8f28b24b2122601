"""Deliveries (one per item × channel): list, inspect with attempts, retry, cancel, adopt a
post or mark it posted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from publisher.api.routes_common import (
    READERS,
    RowId,
    RowIdFilter,
    channel_pool,
    database_of,
    page,
    requires,
    settings_of,
)
from publisher.api.schemas import AdoptIn, ChannelKind, MarkPostedIn, ReasonIn
from publisher.auth import Principal
from publisher.delivery.adopt import adopt_post, mark_posted
from publisher.delivery.ops import cancel_delivery, retry_delivery
from publisher.models import DeliveryState, Role
from publisher.services import queries
from publisher.services.queries import Page

router = APIRouter(tags=["deliveries"])


@router.get("/deliveries")
def list_deliveries(
    request: Request,
    state: DeliveryState | None = None,
    channel: ChannelKind | None = None,
    item: RowIdFilter = None,
    paging: Page = Depends(page),
    who: Principal = Depends(requires(*READERS)),
) -> dict[str, Any]:
    """Deliveries, most recently changed first (editors and reviewers: of their departments'
    items only); filter by state, channel, item."""
    with database_of(request).session() as session:
        return queries.list_deliveries(
            session,
            paging,
            state=state.value if state else None,
            channel=channel.value if channel else None,
            item=item,
            scope=who.scope,
        )


@router.get("/deliveries/{delivery_id}")
def get_delivery(
    delivery_id: RowId, request: Request, who: Principal = Depends(requires(*READERS))
) -> dict[str, Any]:
    """The delivery and every attempt made for it (`attempt_log`, newest first); 403 for
    one of another department's item."""
    with database_of(request).session() as session:
        return queries.delivery_detail(session, delivery_id, scope=who.scope)


@router.post("/deliveries/{delivery_id}/retry", status_code=202)
def retry(
    delivery_id: RowId, request: Request, who: Principal = Depends(requires(Role.OPERATOR))
) -> dict[str, Any]:
    """Start a failed, deferred or cancelled delivery again (409 if live or running)."""
    with database_of(request).session() as session:
        retry_delivery(session, delivery_id, actor=who.actor)
        session.flush()
        return queries.delivery_detail(session, delivery_id)


@router.post("/deliveries/{delivery_id}/cancel")
def cancel(
    delivery_id: RowId,
    request: Request,
    body: ReasonIn | None = None,
    who: Principal = Depends(requires(Role.OPERATOR)),
) -> dict[str, Any]:
    """Stop working on a delivery (state `cancelled`, audited); 409 if running or settled."""
    with database_of(request).session() as session:
        reason = body.reason if body else None
        cancel_delivery(session, delivery_id, actor=who.actor, reason=reason)
        session.flush()
        return queries.delivery_detail(session, delivery_id)


@router.post("/deliveries/{delivery_id}/adopt")
def adopt(
    delivery_id: RowId,
    body: AdoptIn,
    request: Request,
    who: Principal = Depends(requires(Role.OPERATOR)),
) -> dict[str, Any]:
    """Take post `remote_id` as this unknown or failed delivery's copy once the channel shows
    it there (audited); 409 saying what the channel showed when it does not."""
    database = database_of(request)
    adopt_post(
        database,
        settings_of(request),
        channel_pool(request),
        delivery_id,
        body.remote_id,
        actor=who.actor,
    )
    with database.session() as session:
        return queries.delivery_detail(session, delivery_id)


@router.post("/deliveries/{delivery_id}/mark-posted")
def posted(
    delivery_id: RowId,
    body: MarkPostedIn,
    request: Request,
    who: Principal = Depends(requires(Role.OPERATOR)),
) -> dict[str, Any]:
    """Record an unknown or failed delivery live on the operator's word, with a required
    reason (audited), when the channel cannot be asked."""
    with database_of(request).session() as session:
        mark_posted(
            session,
            delivery_id,
            reason=body.reason,
            remote_id=body.remote_id,
            url=body.url,
            actor=who.actor,
        )
        session.flush()
        return queries.delivery_detail(session, delivery_id)
