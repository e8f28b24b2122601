"""Review before publishing: submit, approve (stage by stage), send back (services/review.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from publisher.api.routes_common import RowId, database_of, requires
from publisher.api.schemas import ApproveIn, SendBackIn
from publisher.auth import Principal
from publisher.models import Role
from publisher.services import queries, review

router = APIRouter(tags=["review"])


@router.post("/items/{item_id}/submit")
def submit_item(
    item_id: RowId, request: Request, who: Principal = Depends(requires(Role.EDITOR))
) -> dict[str, Any]:
    """Send the latest revision to its domain's review stages (409 when already submitted or
    nothing changed since it was approved)."""
    with database_of(request).session() as session:
        review.submit_item(session, item_id, who)
        return queries.item_view(session, item_id, scope=who.scope)


@router.post("/items/{item_id}/approve")
def approve_item(
    item_id: RowId,
    request: Request,
    body: ApproveIn | None = None,
    who: Principal = Depends(requires(Role.REVIEWER)),
) -> dict[str, Any]:
    """Approve the next stage of the latest revision. 403 for the item's own author, for a
    second stage by the same reviewer, or another department's item; 409 when the item is
    not waiting for a stage."""
    with database_of(request).session() as session:
        review.approve_item(session, item_id, who, body.comment if body else None)
        return queries.item_view(session, item_id, scope=who.scope)


@router.post("/items/{item_id}/send-back")
def send_back_item(
    item_id: RowId,
    body: SendBackIn,
    request: Request,
    who: Principal = Depends(requires(Role.REVIEWER)),
) -> dict[str, Any]:
    """Return the item to its editor with a comment (required): its approvals are voided and
    it is a draft again (a published item keeps what its channels show)."""
    with database_of(request).session() as session:
        review.send_back_item(session, item_id, who, body.comment)
        return queries.item_view(session, item_id, scope=who.scope)
