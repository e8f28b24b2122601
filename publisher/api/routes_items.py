"""Items: create, read, edit (new revision), preview, publish, retract; media uploads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Request, UploadFile, status

from publisher.api.routes_common import (
    ITEM_READERS,
    READERS,
    CodeFilter,
    RowId,
    channel_pool,
    database_of,
    page,
    requires,
    settings_of,
)
from publisher.api.schemas import ItemIn, ItemPatch, MediaOut, ReasonIn
from publisher.auth import Principal
from publisher.models import ItemStatus, Role
from publisher.services import items as item_service
from publisher.services import queries
from publisher.services.channel_controls import build_adapters, disabled_map
from publisher.services.media import MAX_MEDIA_BYTES, store_image
from publisher.services.publishing import edit_checked, item_preview, publish_checked
from publisher.services.queries import Page, open_drift_for_item

router = APIRouter(tags=["items"])

# The upload's whole request: the image and its multipart framing (`BodyLimitMiddleware`;
# the rest of the API is capped by PUBLISHER_MAX_REQUEST_BYTES).
MAX_UPLOAD_REQUEST_BYTES = MAX_MEDIA_BYTES + 100_000


@router.post("/items", status_code=status.HTTP_201_CREATED)
def create_item(
    body: ItemIn, request: Request, who: Principal = Depends(requires(Role.EDITOR))
) -> dict[str, Any]:
    """A new draft item (revision 1). 422 names each bad field and rule; nothing is stored."""
    who.require_department(body.department)
    pool = channel_pool(request)
    build_adapters(pool)
    disabled = disabled_map(pool)
    with database_of(request).session() as session:
        item = item_service.create_item(
            session,
            settings_of(request),
            body.fields(),
            actor=who.actor,
            disabled=disabled,
            who=who,
        )
        return queries.item_view(session, item.id)


@router.get("/items")
def list_items(
    request: Request,
    status: ItemStatus | None = None,
    domain: CodeFilter = None,
    department: CodeFilter = None,
    paging: Page = Depends(page),
    who: Principal = Depends(requires(*ITEM_READERS)),
) -> dict[str, Any]:
    """Items, newest first (editors and reviewers: of their departments only); filter by
    status, domain, department; `limit`/`offset` paging."""
    with database_of(request).session() as session:
        return queries.list_items(
            session,
            paging,
            status=status.value if status else None,
            domain=domain,
            department=department,
            scope=who.scope,
        )


@router.get("/items/{item_id}")
def get_item(
    item_id: RowId, request: Request, who: Principal = Depends(requires(*ITEM_READERS))
) -> dict[str, Any]:
    """The item, its latest revision, its revisions, one delivery per channel and any open
    drift found on the channels. 403 for an item of another department."""
    with database_of(request).session() as session:
        view = queries.item_view(session, item_id, scope=who.scope)
        view["drift"] = open_drift_for_item(session, item_id)
        return view


@router.patch("/items/{item_id}")
def edit_item(
    item_id: RowId,
    body: ItemPatch,
    request: Request,
    who: Principal = Depends(requires(Role.EDITOR, Role.REVIEWER)),
) -> dict[str, Any]:
    """Changed fields become a new revision, which voids the item's approvals; a published
    item's channels follow it once it is approved and published again (at once in a domain
    without review stages). Reviewers change only `urgent`, `push` and `channels`, which
    after approval only they may change (403 otherwise)."""
    pool = channel_pool(request)
    build_adapters(pool)
    with database_of(request).session() as session:
        item = item_service.get_item(session, item_id)
        who.require_department(item.department_code)
        if body.department:
            who.require_department(body.department)
        settings = settings_of(request)
        edit_checked(session, settings, item_id, body.fields(), pool, actor=who.actor, who=who)
        return queries.item_view(session, item_id)


@router.post("/items/{item_id}/publish", status_code=status.HTTP_202_ACCEPTED)
def publish_item(
    item_id: RowId, request: Request, who: Principal = Depends(requires(Role.EDITOR, Role.REVIEWER))
) -> dict[str, Any]:
    """Preflight every target channel, assign the 索引号, and hand the deliveries to the workers.

    422 (nothing changed) when a channel would refuse the item, naming field, rule and channel;
    409 with the reason in `detail` when the revision has not passed every review stage (an
    urgent item of the disaster domain: one stage, published by a reviewer).
    """
    pool = channel_pool(request)
    build_adapters(pool)
    with database_of(request).session() as session:
        locked = item_service.lock_item(session, item_id)
        who.require_department(locked.item.department_code)
        publish_checked(session, settings_of(request), locked, pool, actor=who.actor, who=who)
        return queries.item_view_of(
            locked.item, locked.revisions, locked.deliveries.values(), locked.approvals
        )


@router.post("/items/{item_id}/retract", status_code=status.HTTP_202_ACCEPTED)
def retract_item(
    item_id: RowId,
    request: Request,
    body: ReasonIn | None = None,
    who: Principal = Depends(requires(Role.EDITOR)),
) -> dict[str, Any]:
    """Withdraw the item from every channel."""
    with database_of(request).session() as session:
        item = item_service.get_item(session, item_id)
        who.require_department(item.department_code)
        reason = body.reason if body else None
        item_service.retract_item(session, item_id, actor=who.actor, reason=reason)
        return queries.item_view(session, item_id)


@router.get("/items/{item_id}/preview")
def preview(
    item_id: RowId, request: Request, who: Principal = Depends(requires(*ITEM_READERS))
) -> dict[str, Any]:
    """Per target channel: what it will be given and what it would refuse; and the findings
    of the pre-publish checks on the latest revision, each saying whether a reviewer
    overrode it (`publisher.services.findings`)."""
    pool = channel_pool(request)
    build_adapters(pool)
    with database_of(request).session() as session:
        item = item_service.get_item(session, item_id)
        queries.check_scope(item.department_code, who.scope)
        latest = item_service.latest_revision(session, item_id)
        return item_preview(session, settings_of(request), item, latest, pool)


@router.get("/items/{item_id}/attempts")
def attempts(
    item_id: RowId, request: Request, who: Principal = Depends(requires(*READERS))
) -> dict[str, Any]:
    """Every call made to a channel for this item, newest first (operators too: these are
    the deliveries' calls)."""
    with database_of(request).session() as session:
        found = queries.item_attempts(session, item_id, scope=who.scope)
        return {"item_id": item_id, "attempts": found}


@router.post(
    "/media",
    status_code=status.HTTP_201_CREATED,
    response_model=MediaOut,
)
def upload_media(
    request: Request,
    file: UploadFile = File(...),
    who: Principal = Depends(requires(Role.EDITOR)),
) -> MediaOut:
    """Store an image (cover or inline), re-encoded without its metadata (EXIF with GPS,
    XMP, comments); pass the returned `url` as `cover_image`."""
    data = file.file.read(MAX_MEDIA_BYTES + 1)
    with database_of(request).session() as session:
        stored = store_image(session, data, actor=who.actor)
    return MediaOut(url=stored.url, sha256=stored.sha256, content_type=stored.content_type)
