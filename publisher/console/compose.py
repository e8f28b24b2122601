"""Writing an item: the compose form (new and edit) and its live per-channel preview.

The form posts to the item services the API uses (`create_item`, `edit_checked`); a refusal
shows the form again as typed, each message beside its field (422). While the editor types,
htmx posts the form to the preview route (debounced): the unsaved content is made into the
item and revision a save would store (`services.drafts`) and previewed as a saved one is
(`publishing.item_preview`): the channels' renderings, the Weibo count, the findings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from channels.registry import KINDS
from publisher.api.routes_common import RowId, channel_pool, database_of, settings_of
from publisher.console.item_form import ItemForm, problem_text, upload_of
from publisher.console.preview import preview_view
from publisher.console.web import Viewer, redirect, render, viewer
from publisher.delivery.publication import ChannelPool
from publisher.errors import InvalidInput
from publisher.models import Item, Revision, Role
from publisher.services import items as item_service
from publisher.services import queries
from publisher.services.channel_controls import build_adapters, disabled_map
from publisher.services.drafts import draft_of
from publisher.services.item_fields import ItemFields
from publisher.services.media import MAX_MEDIA_BYTES, store_image
from publisher.services.publishing import edit_checked, item_preview
from publisher.services.scope import list_departments, list_domains

router = APIRouter(include_in_schema=False)
T = TypeVar("T")


def choices(session: Session, who: Viewer) -> dict[str, Any]:
    """The domains and the departments the viewer may write for, with their Chinese names."""
    scope = who.principal.scope
    departments = [
        d for d in list_departments(session) if d.active and (scope is None or d.code in scope)
    ]
    domains = [d for d in list_domains(session) if d.active]
    return {"domains": domains, "departments": departments, "kinds": KINDS}


def compose_page(
    request: Request,
    who: Viewer,
    form: ItemForm,
    *,
    item: Item | None = None,
    status_code: int = 200,
    preview: Any = None,
) -> HTMLResponse:
    with database_of(request).session() as session:
        context = choices(session, who)
    context.update(form=form, item=item, preview=preview)
    return render(request, "items/compose.html", context, who=who, status_code=status_code)


def new_form_for(request: Request, who: Viewer) -> ItemForm:
    """An empty form: the viewer's first department, a domain it answers for, today."""
    with database_of(request).session() as session:
        context = choices(session, who)
        department = context["departments"][0].code if context["departments"] else ""
        domain = next(
            (
                d.code
                for d in context["domains"]
                if any(dep.code == department for dep in d.departments)
            ),
            "",
        )
    today = item_service.today_local(settings_of(request)).isoformat()
    return ItemForm(values={"department": department, "domain": domain, "formed_on": today})


@router.get("/console/items/new")
def new_item_form(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    who.principal.require(Role.EDITOR)
    return compose_page(request, who, new_form_for(request, who))


async def read_form(request: Request) -> tuple[ItemForm, bytes | None]:
    data: FormData = await request.form()
    upload = upload_of(data)
    cover = await upload.read(MAX_MEDIA_BYTES + 1) if upload is not None else None
    return ItemForm.read(data), cover


def store_cover(request: Request, who: Viewer, form: ItemForm, cover: bytes | None) -> None:
    """Store the chosen cover image (in its own transaction, so that a refusal of the item
    keeps it) and put its address in the form; a refused image is noted beside the field."""
    if not cover:
        return
    try:
        with database_of(request).session() as session:
            stored = store_image(session, cover, actor=who.principal.actor, field="cover_file")
    except InvalidInput as exc:
        for problem in exc.problems:
            form.add_error("cover_file", problem_text(problem))
        return
    form.values["cover_image"] = stored.url


def save_form(
    request: Request,
    who: Viewer,
    form: ItemForm,
    cover: bytes | None,
    write: Callable[[Session, ItemFields, ChannelPool], T],
    *,
    editing: bool = False,
) -> T | None:
    """Store the cover, then `write` the form's fields in one transaction: what `write`
    returns, or None when the form or the service refuses the input (each problem noted on
    `form` beside its field). `Forbidden` for a department the viewer may not write for."""
    store_cover(request, who, form, cover)
    fields = form.fields(editing=editing)
    if fields.department:
        who.principal.require_department(fields.department)
    pool = channel_pool(request)
    build_adapters(pool)
    try:
        if form.errors:
            raise InvalidInput([])
        with database_of(request).session() as session:
            return write(session, fields, pool)
    except InvalidInput as exc:
        for problem in exc.problems:
            form.add_error(problem.field, problem_text(problem))
        return None


@router.post("/console/items/new")
async def create_item(request: Request, who: Viewer = Depends(viewer)) -> Response:
    who.principal.require(Role.EDITOR)
    form, cover = await read_form(request)

    def create(session: Session, fields: ItemFields, pool: ChannelPool) -> int:
        item = item_service.create_item(
            session,
            settings_of(request),
            fields,
            actor=who.principal.actor,
            disabled=disabled_map(pool),
            who=who.principal,
        )
        return item.id

    item_id = await run_in_threadpool(save_form, request, who, form, cover, create)
    if item_id is None:
        return compose_page(request, who, form, status_code=422)
    return redirect(f"/console/items/{item_id}?done=created")


def editable(session: Session, who: Viewer, item_id: int) -> tuple[Item, Revision]:
    """The item and its latest revision, if the viewer may edit it (`Forbidden`)."""
    who.principal.require(Role.EDITOR)
    item = item_service.get_item(session, item_id)
    who.principal.require_department(item.department_code)
    return item, item_service.latest_revision(session, item_id)


@router.get("/console/items/{item_id}/edit")
def edit_item_form(item_id: RowId, request: Request, who: Viewer = Depends(viewer)) -> Response:
    with database_of(request).session() as session:
        item, revision = editable(session, who, item_id)
        form = ItemForm.of_revision(
            revision,
            domain=item.domain_code,
            department=item.department_code,
            channels=item.channels or [],
            push=item.push_tags,
            urgent=item.urgent,
        )
    return compose_page(request, who, form, item=item)


@router.post("/console/items/{item_id}/edit")
async def edit_item(item_id: RowId, request: Request, who: Viewer = Depends(viewer)) -> Response:
    form, cover = await read_form(request)

    def edit(session: Session, fields: ItemFields, pool: ChannelPool) -> bool:
        settings = settings_of(request)
        actor = who.principal.actor
        edit_checked(session, settings, item_id, fields, pool, actor=actor, who=who.principal)
        return True

    def save() -> tuple[Item, bool]:
        with database_of(request).session() as session:
            item, _ = editable(session, who, item_id)
        return item, save_form(request, who, form, cover, edit, editing=True) is not None

    item, saved = await run_in_threadpool(save)
    if not saved:
        return compose_page(request, who, form, item=item, status_code=422)
    return redirect(f"/console/items/{item_id}?done=saved")


def preview_of_form(request: Request, who: Viewer, form: ItemForm, item_id: int | None) -> Any:
    """The preview of what the form would save (None when it makes no item yet), with the
    form's problems noted."""
    fields = form.fields(editing=item_id is not None)
    pool = channel_pool(request)
    build_adapters(pool)
    with database_of(request).session() as session:
        if item_id is not None:
            queries.item_in_scope(session, item_id, who.principal.scope)
        settings = settings_of(request)
        draft = draft_of(session, settings, fields, item_id=item_id, disabled=disabled_map(pool))
        for problem in draft.problems:
            if problem.rule != "required":  # said on saving, not while the editor types
                form.add_error(problem.field, problem_text(problem))
        if draft.item is None or draft.revision is None:
            return None
        shown = item_preview(session, settings, draft.item, draft.revision, pool)
        return preview_view(shown, draft.item, draft.revision)


async def preview_response(request: Request, who: Viewer, item_id: int | None) -> HTMLResponse:
    form, _ = await read_form(request)
    preview = await run_in_threadpool(preview_of_form, request, who, form, item_id)
    context = {"form": form, "preview": preview, "live": True, "item_id": item_id}
    return render(request, "items/preview.html", context, who=who)


@router.post("/console/items/preview")
async def preview_new(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    who.principal.require(Role.EDITOR)
    return await preview_response(request, who, None)


@router.post("/console/items/{item_id}/preview")
async def preview_edit(
    item_id: RowId, request: Request, who: Viewer = Depends(viewer)
) -> HTMLResponse:
    who.principal.require(Role.EDITOR)
    return await preview_response(request, who, item_id)


__all__ = ["router"]
