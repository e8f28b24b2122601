"""Preview, and publish or edit checked against every target channel first.

What each channel would be given (`publications`), what it would show and object to
(`preview_item`), and publish/edit that refuse, naming the channel, field and rule, before
anything is stored or sent. Services never commit."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from channels.base import Publication
from channels.registry import KINDS
from publisher.auth import Principal
from publisher.config import Settings
from publisher.delivery.publication import (
    ChannelPool,
    build_publication,
    preflight,
    website_url_of,
    with_website_estimate,
)
from publisher.errors import FieldProblem, InvalidInput
from publisher.i18n.problems import zh
from publisher.models import (
    Item,
    ItemStatus,
    Revision,
)
from publisher.services.channel_controls import disabled_map, enabled_kinds
from publisher.services.findings import findings_view
from publisher.services.items import (
    ItemFields,
    LockedItem,
    edit_item,
    get_item,
    publish_locked,
)

log = logging.getLogger(__name__)


def target_kinds(item: Item, pool: ChannelPool) -> list[str]:
    """The channels an item goes to: its own choice, else every enabled channel."""
    chosen = [k for k in (item.channels or []) if k in KINDS]
    return chosen or enabled_kinds(pool)


def publications(
    session: Session, settings: Settings, item: Item, rev: Revision, pool: ChannelPool
) -> dict[str, Publication]:
    """What each enabled target channel would be given of `rev` now (website URL estimated)."""
    return publications_of(session, settings, item, rev, website_url_of(session, item.id), pool)


def publications_of(
    session: Session,
    settings: Settings,
    item: Item,
    rev: Revision,
    website_url: str | None,
    pool: ChannelPool,
) -> dict[str, Publication]:
    """`publications` of revision `rev`, given the URL of the item's website page (if any)."""
    base = build_publication(settings, item, rev, None)
    if not base.index_no:  # assigned at publish; the estimate has the right length
        year = datetime.now(ZoneInfo(settings.timezone)).year
        base = replace(base, index_no=f"{settings.org_code}/{year}-00000")
    pubs: dict[str, Publication] = {}
    for kind in target_kinds(item, pool):
        if pool.disabled_reason(kind) is not None:
            continue
        pub = base if kind == "website" else replace(base, website_url=website_url)
        pubs[kind] = with_website_estimate(pub, settings)
    return pubs


def preflight_problems(
    session: Session, settings: Settings, item: Item, rev: Revision, pool: ChannelPool
) -> list[FieldProblem]:
    return _field_problems(pool, publications(session, settings, item, rev, pool))


def _field_problems(pool: ChannelPool, pubs: dict[str, Publication]) -> list[FieldProblem]:
    found = preflight(pool, pubs)
    return [
        FieldProblem(p.field, p.rule, f"{p.channel}: {p.message}", p.channel, p.values)
        for p in found
    ]


def preview_item(
    session: Session, settings: Settings, item: Item, rev: Revision, pool: ChannelPool
) -> list[dict[str, Any]]:
    """Per target channel: what it will be given of `rev`, what it would show, and its
    objections."""
    pubs = publications(session, settings, item, rev, pool)
    out = []
    for kind in target_kinds(item, pool):
        reason = pool.disabled_reason(kind)
        entry: dict[str, Any] = {
            "channel": kind,
            "enabled": reason is None,
            "disabled_reason": reason,
            "problems": [],
        }
        pub = pubs.get(kind)
        if pub is not None:
            channel = pool.get(kind)
            entry["publication"] = asdict(pub)
            try:
                entry["rendered"] = channel.preview(pub)
            except Exception as exc:  # a preview must not fail on one channel's bug
                log.exception("preview of %s failed", kind)
                entry["rendered"] = {"error": type(exc).__name__}
            entry["problems"] = [
                {
                    "field": p.field,
                    "rule": p.rule,
                    "message": p.message,
                    "message_zh": zh(FieldProblem(p.field, p.rule, p.message, None, p.values)),
                }
                for p in channel.preflight(pub)
            ]
        out.append(entry)
    return out


def item_preview(
    session: Session, settings: Settings, item: Item, rev: Revision, pool: ChannelPool
) -> dict[str, Any]:
    """What `GET /items/{id}/preview` shows of revision `rev` (saved, or a transient draft of
    `services.drafts`): per target channel `preview_item`, and the `findings` of the
    pre-publish checks, each saying whether a reviewer overrode it."""
    return {
        "item_id": item.id,
        "channels": preview_item(session, settings, item, rev, pool),
        "findings": findings_view(session, item, rev),
    }


def publish_checked(
    session: Session,
    settings: Settings,
    locked: LockedItem,
    pool: ChannelPool,
    *,
    actor: str,
    who: Principal | None = None,
) -> Item:
    """Preflight every target channel, then publish (`publish_locked`, which refuses an
    item not through review: `Conflict`). Raises `InvalidInput` naming the field, the rule
    and the channel when any channel would refuse the item; nothing is changed then.

    The preflight reads only what `lock_item` loaded: no query of its own.
    """
    item = locked.item
    pubs = publications_of(session, settings, item, locked.latest, locked.website_url(), pool)
    problems = _field_problems(pool, pubs)
    if problems:
        raise InvalidInput(problems)
    kinds = enabled_kinds(pool)
    return publish_locked(session, settings, locked, actor=actor, enabled_kinds=kinds, who=who)


def edit_checked(
    session: Session,
    settings: Settings,
    item_id: int,
    fields: ItemFields,
    pool: ChannelPool,
    *,
    actor: str,
    who: Principal | None = None,
) -> Revision | None:
    """Edit the item (`edit_item`: `who` decides the flags); when it is published, preflight
    its channels on the new revision first.

    Raises `InvalidInput` naming the channel, field and rule: the caller's transaction then
    rolls back, so the revision is not stored and no channel is touched.
    """
    disabled = disabled_map(pool)
    rev = edit_item(session, settings, item_id, fields, actor=actor, disabled=disabled, who=who)
    item = get_item(session, item_id)
    if rev is not None and item.status == ItemStatus.PUBLISHED:
        problems = preflight_problems(session, settings, item, rev, pool)
        if problems:
            raise InvalidInput(problems)
    return rev
