"""Pre-publish checks: a reviewer's override of an item's findings, the one-step mask, and the
sensitive-word list (`publisher.services.findings`). The findings themselves are shown by
`GET /items/{id}/preview`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field, StringConstraints

from publisher.api.routes_common import (
    RowId,
    channel_pool,
    database_of,
    requires,
    settings_of,
)
from publisher.auth import Principal
from publisher.models import Role
from publisher.services import findings as checks
from publisher.services.channel_controls import build_adapters
from publisher.services.items import get_item, latest_revision
from publisher.services.limits import REASON_MAX, WORD_MAX
from publisher.services.masking import mask_item
from publisher.services.queries import iso, revision_view

router = APIRouter(tags=["checks"])


class OverrideIn(BaseModel):
    reason: str = Field(
        min_length=1, max_length=REASON_MAX, description="why these findings may be published"
    )


class WordsIn(BaseModel):
    words: list[Annotated[str, StringConstraints(max_length=WORD_MAX)]] = Field(
        min_length=1, max_length=10_000, description="words to flag, matched in any case"
    )


@router.post("/items/{item_id}/override-findings", status_code=status.HTTP_201_CREATED)
def override_findings(
    item_id: RowId,
    body: OverrideIn,
    request: Request,
    who: Principal = Depends(requires(Role.REVIEWER)),
) -> dict[str, Any]:
    """A reviewer of the item's department lets the latest revision's findings go out, for
    the reason given. Bound to that exact text: any edit voids it. 409 when nothing blocks."""
    with database_of(request).session() as session:
        item = get_item(session, item_id)
        who.require_department(item.department_code)
        revision = latest_revision(session, item_id)
        row = checks.override_findings(
            session,
            item,
            revision,
            reviewer=who.actor,
            reason=body.reason,
        )
        return {
            "item_id": item_id,
            "revision": revision.number,
            "content_hash": row.content_hash,
            "reviewer": row.reviewer,
            "reason": row.reason,
            "at": iso(row.at),
            "findings": row.findings,
        }


@router.post("/items/{item_id}/mask")
def mask(
    item_id: RowId, request: Request, who: Principal = Depends(requires(Role.EDITOR))
) -> dict[str, Any]:
    """A new revision with every ID number, mobile number and bank card number masked where
    it stands (`441900********1234`), and the findings left (sensitive words, metadata).
    409 when there is no personal data to mask."""
    pool = channel_pool(request)
    build_adapters(pool)
    with database_of(request).session() as session:
        item = get_item(session, item_id)
        who.require_department(item.department_code)
        revision, counts = mask_item(
            session,
            settings_of(request),
            item_id,
            pool,
            actor=who.actor,
        )
        return {
            "item_id": item_id,
            "revision": revision_view(revision),
            "masked": counts,
            "findings": checks.findings_view(session, item, revision),
        }


@router.get("/sensitive-words")
def list_sensitive_words(
    request: Request, _: Principal = Depends(requires(Role.REVIEWER, Role.SUPERVISOR))
) -> dict[str, Any]:
    """The words the pre-publish check flags."""
    with database_of(request).session() as session:
        rows = checks.list_words(session)
        return {
            "words": [
                {"word": w.word, "added_by": w.added_by, "added_at": iso(w.added_at)} for w in rows
            ]
        }


@router.post("/sensitive-words", status_code=status.HTTP_201_CREATED)
def add_sensitive_words(
    body: WordsIn, request: Request, who: Principal = Depends(requires())
) -> dict[str, Any]:
    """Add words (admins): `added`, and `already` those on the list in any case or width."""
    with database_of(request).session() as session:
        added, already = checks.add_words(session, body.words, actor=who.actor)
        return {"added": added, "already": already}


@router.delete("/sensitive-words/{word}")
def remove_sensitive_word(
    word: str, request: Request, who: Principal = Depends(requires())
) -> dict[str, Any]:
    """Remove a word (admins), matched in any case or width; 404 when it is not listed."""
    with database_of(request).session() as session:
        removed = checks.remove_word(session, word, actor=who.actor)
        return {"removed": removed}
