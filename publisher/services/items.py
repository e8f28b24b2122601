"""Create, edit, publish and retract items.

Each function changes desired state only, inside the caller's transaction (services never
commit); deliveries that need work are handed to the workers after that transaction commits.
Bad input raises `InvalidInput` naming every field and rule before anything is written
(`item_fields.field_problems`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.registry import KINDS, channel_class
from publisher.audit import audit
from publisher.auth import Principal
from publisher.config import Settings
from publisher.dispatch import enqueue_after_commit
from publisher.errors import Conflict, FieldProblem, InvalidInput, NotFound
from publisher.i18n import t
from publisher.i18n.deliveries import channel_name
from publisher.i18n.refusals import item_status_name
from publisher.index_numbers import allocate_index_no
from publisher.models import (
    WEBSITE_WAIT_SECONDS,
    Approval,
    Delivery,
    DeliveryState,
    Domain,
    Item,
    ItemStatus,
    Revision,
    WaitReason,
    utcnow,
)
from publisher.services import review
from publisher.services.item_fields import (
    ItemFields,
    new_revision,
    today_local,
    validate_fields,
)
from publisher.services.limits import render_body
from publisher.services.lookup import get_item, latest_revision


def _checked(
    session: Session,
    settings: Settings,
    f: ItemFields,
    rendered: tuple[str | None, list[FieldProblem]],
    *,
    creating: bool,
    disabled: dict[str, str | None],
) -> str | None:
    """The sanitised HTML of the body `f` sets (None: unchanged), from `rendered`, what
    `render_body` made of it (once, before any row is locked). Raises `InvalidInput` naming
    every bad field."""
    body, problems = rendered
    problems = problems + validate_fields(
        session, settings, f, creating=creating, disabled=disabled, body=body
    )
    if problems:
        raise InvalidInput(problems)
    return body


def create_item(
    session: Session,
    settings: Settings,
    fields: ItemFields,
    *,
    actor: str,
    disabled: dict[str, str | None] | None = None,
    who: Principal | None = None,
) -> Item:
    """A new draft item with revision 1. Raises `InvalidInput`; `Forbidden` when `who` (None:
    no reviewer) may not mark it urgent (`review.check_flag_changes`)."""
    rendered = render_body(settings, fields.body_html, fields.body_markdown)
    body = _checked(session, settings, fields, rendered, creating=True, disabled=disabled or {})
    assert fields.domain and fields.department and fields.title and fields.formed_on
    domain = session.get(Domain, fields.domain)
    assert domain is not None
    urgent = (False, bool(fields.urgent))
    review.check_flag_changes(session, None, domain, fields.department, {"urgent": urgent}, who)
    item = Item(
        domain_code=fields.domain,
        department_code=fields.department,
        channels=list(dict.fromkeys(fields.channels)) if fields.channels is not None else [],
        push_tags=fields.push,
        urgent=bool(fields.urgent),
        created_by=actor,
    )
    session.add(item)
    session.flush()
    rev = _add_revision(session, item, fields, body, None, actor)
    audit(
        session,
        actor,
        "item.create",
        f"item:{item.id}",
        item_id=item.id,
        revision_id=rev.id if rev else None,
    )
    return item


def _add_revision(
    session: Session,
    item: Item,
    f: ItemFields,
    body: str | None,
    previous: Revision | None,
    actor: str,
) -> Revision | None:
    rev = new_revision(item, f, body, previous, actor)
    if previous is not None and previous.content_hash == rev.content_hash:
        return None
    session.add(rev)
    session.flush()
    return rev


@dataclass
class LockedItem:
    """An item locked for a change of its desired state, with what publishing it reads: its
    revisions (oldest first), its deliveries by channel kind, locked as well, and its
    approvals (oldest first; not read when its domain has no review stages)."""

    item: Item
    revisions: list[Revision]
    deliveries: dict[str, Delivery]
    approvals: list[Approval] = field(default_factory=list)

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]

    def website_url(self) -> str | None:
        """The URL of the item's website page, which the other channels link to, if it has one."""
        website = self.deliveries.get("website")
        return website.remote_url if website is not None and website.desired_present else None


def lock_item(session: Session, item_id: int) -> LockedItem:
    """The item, its revisions and its deliveries in three queries (a fourth for its approvals
    when its domain has review stages); the item's row and then its deliveries' rows locked,
    in the order every change of desired state takes them.

    Raises `NotFound`.
    """
    item = get_item(session, item_id, for_update=True)
    revisions = list(
        session.scalars(
            select(Revision).where(Revision.item_id == item_id).order_by(Revision.number)
        )
    )
    if not revisions:
        raise NotFound(f"item {item_id} has no revision", zh=t("refusal.no_revision", id=item_id))
    deliveries = _lock_deliveries(session, item_id)
    approvals = review.item_approvals(session, item_id) if item.domain.review_stages else []
    return LockedItem(item, revisions, deliveries, approvals)


def _lock_deliveries(session: Session, item_id: int) -> dict[str, Delivery]:
    """The item's deliveries by channel kind, row-locked so that a worker finishing a call
    sees the change that follows."""
    return {
        delivery.channel_kind: delivery
        for delivery in session.scalars(
            select(Delivery)
            .where(Delivery.item_id == item_id)
            .order_by(Delivery.id)
            .with_for_update(key_share=True)
        )
    }


def edit_item(
    session: Session,
    settings: Settings,
    item_id: int,
    fields: ItemFields,
    *,
    actor: str,
    disabled: dict[str, str | None] | None = None,
    who: Principal | None = None,
) -> Revision | None:
    """A new revision (None when nothing changed); it voids the item's approvals.

    A published item's deliveries follow it at once only when neither its old nor its new
    domain has review stages; otherwise the edit is held until approved and published again
    (`review`). Raises `InvalidInput`, `Conflict` (retracted), `Forbidden` when `who` (None:
    no reviewer) may not change `urgent`, `push`, `channels` or `domain`
    (`review.check_flag_changes`).
    """
    rendered = render_body(settings, fields.body_html, fields.body_markdown)
    item = get_item(session, item_id, for_update=True)
    if item.status == ItemStatus.RETRACTED:
        raise Conflict(
            f"item {item_id} is retracted; publish it again before editing",
            zh=t("refusal.retracted_edit", id=item_id),
        )
    merged = ItemFields(**{**vars(fields)})
    merged.domain = fields.domain or item.domain_code
    merged.department = fields.department or item.department_code
    body = _checked(session, settings, merged, rendered, creating=False, disabled=disabled or {})
    review.check_content_rights(who, [k for k, v in vars(fields).items() if v not in (None, {})])
    domain = session.get(Domain, merged.domain)
    assert domain is not None
    flags = _flag_changes(item, fields)
    flags["domain"] = (item.domain_code, merged.domain)
    review.check_flag_changes(session, item, domain, merged.department, flags, who)
    review.audit_flag_changes(session, item, flags, actor)
    # An edit of a published item is held if its old or its new domain has stages.
    staged = bool(item.domain.review_stages) or bool(domain.review_stages)
    item.domain_code, item.department_code = merged.domain, merged.department
    published = item.status == ItemStatus.PUBLISHED
    before = published_kinds(session, item) if published else set()
    if fields.channels is not None:
        item.channels = list(dict.fromkeys(fields.channels))
    if fields.push is not None:
        item.push_tags = fields.push
    if fields.urgent is not None:
        item.urgent = fields.urgent
    previous = latest_revision(session, item_id)
    rev = _add_revision(session, item, fields, body, previous, actor)
    if rev is not None:
        audit(
            session,
            actor,
            "item.edit",
            f"item:{item.id}",
            item_id=item.id,
            revision_id=rev.id,
            revision=rev.number,
        )
        review.after_edit(session, item, rev, actor)
    if published:
        wanted = set(item.channels) if fields.channels else before
        # Held: the channels keep the approved revision until this one is approved too.
        follow = rev is not None and not staged
        if follow or wanted != before:
            _check_targets(wanted)
            deliveries = _lock_deliveries(session, item.id)
            shown = rev if follow else _shown_revision(session, deliveries) or previous
            _point_deliveries(session, item, shown, wanted, deliveries)
    return rev


def _flag_changes(item: Item, fields: ItemFields) -> dict[str, tuple[Any, Any]]:
    """`urgent`, `push` and `channels`: (now, after the edit)."""
    channels = list(item.channels or [])
    return {
        "urgent": (item.urgent, item.urgent if fields.urgent is None else fields.urgent),
        "push": (item.push_tags, item.push_tags if fields.push is None else fields.push),
        "channels": (
            channels,
            channels if fields.channels is None else list(dict.fromkeys(fields.channels)),
        ),
    }


def _shown_revision(session: Session, deliveries: dict[str, Delivery]) -> Revision | None:
    """The revision the item's channels were last told to show."""
    ids = [d.desired_revision_id for d in deliveries.values() if d.desired_present]
    known = [i for i in ids if i is not None]
    return session.get(Revision, max(known)) if known else None


def _check_targets(kinds: set[str]) -> None:
    """Channels that link to the website article need the website among the targets."""
    if "website" in kinds:
        return
    dependent = sorted(k for k in kinds if channel_class(k).needs_website_url)
    if dependent:
        raise InvalidInput(
            [
                FieldProblem(
                    "channels",
                    "needs_website",
                    f"{', '.join(dependent)} link to the website article: include 'website'",
                    values={"channels": "、".join(channel_name(k) for k in dependent)},
                )
            ]
        )


def _point_deliveries(
    session: Session,
    item: Item,
    rev: Revision | None,
    wanted: set[str],
    deliveries: dict[str, Delivery],
) -> None:
    """Desired state of every delivery: `rev` (if given) on the `wanted` channels, nothing
    elsewhere. `deliveries` are the item's, locked (`_lock_deliveries`); missing ones are
    created and added to it, and a cancelled one stays cancelled unless it must now withdraw.
    Everything is flushed when this returns."""
    for kind in sorted(wanted - set(deliveries)):
        assert rev is not None
        deliveries[kind] = Delivery(item_id=item.id, channel_kind=kind, desired_revision_id=rev.id)
        session.add(deliveries[kind])
    now = utcnow()
    website = deliveries.get("website")
    website_up = website is not None and website.remote_url is not None
    touched = []
    for kind, delivery in deliveries.items():
        present = kind in wanted
        if delivery.state == DeliveryState.CANCELLED and present:
            continue
        delivery.desired_present = present
        if rev is not None:
            delivery.desired_revision_id = rev.id
        if delivery.state != DeliveryState.RUNNING:
            delivery.state = DeliveryState.PENDING
        delivery.failing_since = None
        delivery.consecutive_failures = 0
        delivery.wait_reason = None
        delivery.next_attempt_at = now
        if present and not website_up and channel_class(kind).needs_website_url:
            # Nothing to do until the website page exists; its going live wakes this one.
            delivery.wait_reason = WaitReason.WEBSITE
            delivery.next_attempt_at = now + timedelta(seconds=WEBSITE_WAIT_SECONDS)
            continue
        delivery.dispatched_at = now  # handed to the broker by this commit
        touched.append(delivery)
    session.flush()  # one INSERT for the new deliveries, with their final values: their ids
    enqueue_after_commit(
        session, [(delivery.id, delivery.channel_kind) for delivery in touched], marked=True
    )


def published_kinds(session: Session, item: Item) -> set[str]:
    """The channels a published item is on: its own list, or those it was published to."""
    if item.channels:
        return set(item.channels)
    return set(
        session.scalars(
            select(Delivery.channel_kind).where(
                Delivery.item_id == item.id, Delivery.desired_present.is_(True)
            )
        )
    )


def publish_item(
    session: Session,
    settings: Settings,
    item_id: int,
    *,
    actor: str,
    enabled_kinds: list[str],
    who: Principal | None = None,
) -> Item:
    """`publish_locked` on the item, locked here. Raises `NotFound`, `InvalidInput`,
    `Conflict`."""
    locked = lock_item(session, item_id)
    return publish_locked(
        session, settings, locked, actor=actor, enabled_kinds=enabled_kinds, who=who
    )


def publish_locked(
    session: Session,
    settings: Settings,
    locked: LockedItem,
    *,
    actor: str,
    enabled_kinds: list[str],
    who: Principal | None = None,
) -> Item:
    """Desired state: every chosen channel shows the latest revision. Assigns the 索引号.

    Raises `InvalidInput` when there is no channel to publish to, or when channels that link
    to the website article are chosen without the website; `Conflict` when the revision has
    not passed every review stage of its domain (`review.check_publishable`: the urgent path
    needs `who` to be a reviewer). Everything is flushed when this returns; the new
    deliveries are in `locked.deliveries`.
    """
    item, rev = locked.item, locked.latest
    kinds = [k for k in (item.channels or enabled_kinds) if k in KINDS]
    if not kinds:
        raise InvalidInput(
            [FieldProblem("channels", "enabled", "no enabled channel to publish to")]
        )
    _check_targets(set(kinds))
    urgent_path = review.check_publishable(session, item, rev, locked.approvals, who)
    item.post_review_pending = urgent_path
    if item.index_no is None:
        year = datetime.now(ZoneInfo(settings.timezone)).year
        item.index_no = allocate_index_no(session, settings.org_code, year)
    item.status = ItemStatus.PUBLISHED
    item.published_at = item.published_at or datetime.now(UTC)
    item.retracted_at = None
    audit(
        session,
        actor,
        "item.publish",
        f"item:{item.id}",
        item_id=item.id,
        revision_id=rev.id,
        revision=rev.number,
        index_no=item.index_no,
        channels=kinds,
        urgent_path=urgent_path,
    )
    _point_deliveries(session, item, rev, set(kinds), locked.deliveries)
    return item


def retract_item(session: Session, item_id: int, *, actor: str, reason: str | None = None) -> Item:
    """Desired state: no channel shows the item."""
    item = get_item(session, item_id, for_update=True)
    if item.status != ItemStatus.PUBLISHED:
        raise Conflict(
            f"item {item_id} is {item.status.value}, not published",
            zh=t("refusal.not_published", id=item_id, status=item_status_name(item.status)),
        )
    item.status = ItemStatus.RETRACTED
    item.retracted_at = datetime.now(UTC)
    _point_deliveries(session, item, None, set(), _lock_deliveries(session, item.id))
    audit(session, actor, "item.retract", f"item:{item.id}", item_id=item.id, reason=reason)
    return item


__all__ = [
    "ItemFields",
    "LockedItem",
    "create_item",
    "edit_item",
    "get_item",
    "latest_revision",
    "lock_item",
    "publish_item",
    "publish_locked",
    "retract_item",
    "today_local",
]
