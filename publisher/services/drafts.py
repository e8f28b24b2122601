"""Unsaved content as it would be stored: what the console's live preview shows while an
editor types, built by the same code a create or an edit stores with.

`draft_of` renders the body (`render_body`), checks the fields (`validate_fields`) and builds
the item and the revision (`new_revision`) a save would make, transient: nothing is added to
the session, nothing is written, nothing is raised for bad input (the problems come back).
Preview them with `publishing.item_preview`, as a saved revision is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from publisher.config import Settings
from publisher.errors import FieldProblem
from publisher.models import Department, Domain, Item, ItemStatus, Revision
from publisher.services.item_fields import ItemFields, new_revision, validate_fields
from publisher.services.limits import render_body
from publisher.services.lookup import get_item, latest_revision


@dataclass(frozen=True)
class Draft:
    """What saving `fields` would store: `item` and `revision` (transient, never added to a
    session), or None when the fields do not make one (no known domain and department, no
    body, no date); and every problem a save would refuse it for."""

    item: Item | None
    revision: Revision | None
    problems: list[FieldProblem]


def draft_of(
    session: Session,
    settings: Settings,
    fields: ItemFields,
    *,
    item_id: int | None = None,
    disabled: dict[str, str | None] | None = None,
) -> Draft:
    """The item and revision `fields` would make: a new item, or the next revision of item
    `item_id` (raises `NotFound` for an unknown one). The caller checks who may see it."""
    body, problems = render_body(settings, fields.body_html, fields.body_markdown)
    current = get_item(session, item_id) if item_id is not None else None
    previous = latest_revision(session, item_id) if item_id is not None else None
    merged = replace(
        fields,
        domain=fields.domain or (current.domain_code if current else None),
        department=fields.department or (current.department_code if current else None),
    )
    problems = problems + validate_fields(
        session, settings, merged, creating=current is None, disabled=disabled or {}, body=body
    )
    domain = session.get(Domain, merged.domain) if merged.domain else None
    department = session.get(Department, merged.department) if merged.department else None
    if domain is None or department is None:
        return Draft(None, None, problems)
    if previous is None and (body is None or merged.formed_on is None):
        return Draft(None, None, problems)
    if fields.channels is not None:
        channels = list(dict.fromkeys(fields.channels))
    else:
        channels = list(current.channels or []) if current else []
    push = fields.push if fields.push is not None else (current.push_tags if current else None)
    urgent = fields.urgent if fields.urgent is not None else bool(current and current.urgent)
    item = Item(
        id=item_id,
        domain_code=domain.code,
        department_code=department.code,
        domain=domain,
        department=department,
        status=current.status if current else ItemStatus.DRAFT,
        index_no=current.index_no if current else None,
        published_at=current.published_at if current else None,
        channels=channels,
        push_tags=push,
        urgent=urgent,
    )
    revision = new_revision(item, merged, body, previous, actor="")
    return Draft(item, revision, problems)
