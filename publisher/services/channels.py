"""Operator actions on channels and deliveries: status, pause, resume, credentials, cancel.

Services never commit. A credential given here goes only to the shared store (where every
worker's adapter reads it): never into the audit trail, a log or an answer.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Publication, SharedStore
from channels.registry import KINDS
from publisher.config import Settings
from publisher.db import enqueue_after_commit
from publisher.errors import Conflict, FieldProblem, InvalidInput, NotFound
from publisher.models import Channel as ChannelRow
from publisher.models import (
    Delivery,
    DeliveryState,
    Freeze,
    Item,
    ItemStatus,
    Revision,
    WaitReason,
    utcnow,
)
from publisher.services.deliveries import (
    ChannelPool,
    active_freeze,
    build_publication,
    channel_row,
    poke_delivery,
    preflight,
    wake_waiting,
    website_url_of,
    with_website_estimate,
)
from publisher.services.items import (
    ItemFields,
    LockedItem,
    audit,
    edit_item,
    get_item,
    latest_revision,
    publish_locked,
)
from publisher.services.queries import counts_by_state

log = logging.getLogger(__name__)


def enabled_kinds(pool: ChannelPool) -> list[str]:
    return [kind for kind in KINDS if pool.disabled_reason(kind) is None]


def disabled_map(pool: ChannelPool) -> dict[str, str | None]:
    return {kind: pool.disabled_reason(kind) for kind in KINDS}


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise NotFound(f"unknown channel {kind!r}; known: {', '.join(KINDS)}")


def build_adapters(pool: ChannelPool) -> None:
    """Build every adapter now (a no-op once they are built).

    Call this before opening a database session: on SQLite, building an adapter may read the
    shared store (the same database, its own transaction), which would wait on the open one.
    """
    for kind in KINDS:
        pool.disabled_reason(kind)


def warm_pool(pool: ChannelPool) -> dict[str, dict[str, Any]]:
    """`build_adapters`, then read each enabled adapter's health (which may read the shared
    store); returns health per enabled kind."""
    build_adapters(pool)
    health: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        if pool.disabled_reason(kind) is None:
            try:
                health[kind] = pool.get(kind).health()
            except Exception as exc:  # a status page must not fail on one channel's bug
                health[kind] = {"error": str(exc)}
    return health


def channel_statuses(
    session: Session, pool: ChannelPool, health: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per kind: enabled (or why not), paused, needs re-authorisation, counts.

    `health` comes from `warm_pool`, called before `session` began.
    """
    counts = counts_by_state(session)
    out = []
    for kind in KINDS:
        row = session.get(ChannelRow, kind)
        reason = pool.disabled_reason(kind)
        kind_health = health.get(kind, {})
        out.append(
            {
                "kind": kind,
                "enabled": reason is None,
                "disabled_reason": reason,
                "paused": bool(row and row.paused),
                "paused_reason": row.paused_reason if row else None,
                "needs_reauth": bool(row and row.needs_reauth),
                "reauth_reason": row.reauth_reason if row else None,
                "deliveries": counts.get(kind, {}),
                "rate_budget": _rate_budget(kind_health),
                "health": kind_health,
            }
        )
    return out


def _rate_budget(health: dict[str, Any]) -> dict[str, Any] | None:
    if "posts_per_window" in health:
        return {
            "limit": health["posts_per_window"],
            "window_seconds": health.get("window_seconds"),
        }
    budget = health.get("rate_budget")
    return budget if isinstance(budget, dict) else None


def pause_channel(session: Session, kind: str, reason: str | None, *, actor: str) -> ChannelRow:
    """Stop taking work for `kind`; its deliveries wait (deferred), none fail."""
    check_kind(kind)
    row = channel_row(session, kind)
    row.paused, row.paused_reason = True, (reason or "").strip() or None
    audit(session, actor, "channel.pause", f"channel:{kind}", reason=row.paused_reason)
    return row


def resume_channel(session: Session, kind: str, *, actor: str) -> ChannelRow:
    """Take work for `kind` again; the deliveries it deferred become due now.

    Also clears "needs re-authorisation" (the operator fixed the credentials or the clock):
    if the channel still refuses, the next call marks it again.
    """
    check_kind(kind)
    row = channel_row(session, kind)
    row.paused, row.paused_reason = False, None
    row.needs_reauth, row.reauth_reason = False, None
    woken = wake_waiting(session, kind=kind, reasons=(WaitReason.PAUSED, WaitReason.REAUTH))
    audit(session, actor, "channel.resume", f"channel:{kind}", woken=woken)
    return row


# Channels whose access token an operator gives at run time (OAuth2 tokens expire).
TOKEN_CHANNELS = ("weibo",)


def store_credentials(shared: SharedStore, kind: str, access_token: str) -> None:
    """Put a new access token for `kind` where every worker's adapter reads it.

    Raises `NotFound`, `InvalidInput`. Call it outside any open session (see `warm_pool`).
    The token is never audited, logged or echoed.
    """
    check_kind(kind)
    if kind not in TOKEN_CHANNELS:
        raise InvalidInput(
            [
                FieldProblem(
                    "kind",
                    "token_channel",
                    f"{kind} takes its credentials from the environment, not a token; fix them "
                    f"and restart, then `publisher channels resume {kind}`",
                )
            ]
        )
    token = (access_token or "").strip()
    if not token:
        raise InvalidInput(
            [FieldProblem("access_token", "required", "access_token must not be empty")]
        )
    shared.set(f"{kind}:access_token", token)


def credentials_renewed(session: Session, kind: str, *, actor: str) -> int:
    """After `store_credentials`: clear "needs re-authorisation" and make the channel's waiting
    deliveries due now. Returns how many were woken."""
    check_kind(kind)
    row = channel_row(session, kind)
    row.needs_reauth, row.reauth_reason = False, None
    woken = wake_waiting(session, kind=kind, reasons=(WaitReason.REAUTH, WaitReason.DISABLED))
    audit(session, actor, "channel.credentials", f"channel:{kind}", woken=woken)
    return woken


CANCELLABLE = (
    DeliveryState.PENDING,
    DeliveryState.RETRYING,
    DeliveryState.DEFERRED,
    DeliveryState.FAILED,
    DeliveryState.UNKNOWN,
)


def cancel_delivery(
    session: Session, delivery_id: int, *, actor: str, reason: str | None = None
) -> Delivery:
    """Stop working on a delivery (state `cancelled`). Raises `NotFound`, `Conflict`.

    A running delivery cannot be cancelled under its worker's feet; settled ones have nothing
    left to stop.
    """
    d = session.get(Delivery, delivery_id)
    if d is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    if d.state not in CANCELLABLE:
        raise Conflict(f"delivery {delivery_id} is {d.state.value}; it cannot be cancelled")
    d.state = DeliveryState.CANCELLED
    d.next_attempt_at = utcnow()
    d.explanation = f"cancelled by {actor}" + (f": {reason}" if reason else "")
    audit(session, actor, "delivery.cancel", f"delivery:{d.id}", reason=reason)
    return d


# --- preflight, preview and publishing through the pool --------------------------------------


def target_kinds(item: Item, pool: ChannelPool) -> list[str]:
    """The channels an item goes to: its own choice, else every enabled channel."""
    chosen = [k for k in (item.channels or []) if k in KINDS]
    return chosen or enabled_kinds(pool)


def publications(
    session: Session, settings: Settings, item: Item, pool: ChannelPool
) -> dict[str, Publication]:
    """What each enabled target channel would be given now (website URL estimated)."""
    rev = latest_revision(session, item.id)
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
    base = build_publication(session, settings, item, rev, None)
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
    session: Session, settings: Settings, item: Item, pool: ChannelPool
) -> list[FieldProblem]:
    return _field_problems(pool, publications(session, settings, item, pool))


def _field_problems(pool: ChannelPool, pubs: dict[str, Publication]) -> list[FieldProblem]:
    found = preflight(pool, pubs)
    return [FieldProblem(p.field, p.rule, f"{p.channel}: {p.message}", p.channel) for p in found]


def preview_item(
    session: Session, settings: Settings, item: Item, pool: ChannelPool
) -> list[dict[str, Any]]:
    """Per target channel: what it will be given, what it would show, and its objections."""
    pubs = publications(session, settings, item, pool)
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
                {"field": p.field, "rule": p.rule, "message": p.message}
                for p in channel.preflight(pub)
            ]
        out.append(entry)
    return out


def publish_checked(
    session: Session, settings: Settings, locked: LockedItem, pool: ChannelPool, *, actor: str
) -> Item:
    """Preflight every target channel, then publish (`publish_locked`). Raises `InvalidInput`
    naming the field, the rule and the channel when any channel would refuse the item;
    nothing is changed then.

    The preflight reads only what `lock_item` loaded: no query of its own.
    """
    item = locked.item
    pubs = publications_of(session, settings, item, locked.latest, locked.website_url(), pool)
    problems = _field_problems(pool, pubs)
    if problems:
        raise InvalidInput(problems)
    return publish_locked(session, settings, locked, actor=actor, enabled_kinds=enabled_kinds(pool))


def edit_checked(
    session: Session,
    settings: Settings,
    item_id: int,
    fields: ItemFields,
    pool: ChannelPool,
    *,
    actor: str,
) -> Revision | None:
    """Edit the item; when it is published, preflight its channels on the new revision first.

    Raises `InvalidInput` naming the channel, field and rule: the caller's transaction then
    rolls back, so the revision is not stored and no channel is touched.
    """
    rev = edit_item(session, settings, item_id, fields, actor=actor, disabled=disabled_map(pool))
    item = get_item(session, item_id)
    if rev is not None and item.status == ItemStatus.PUBLISHED:
        problems = preflight_problems(session, settings, item, pool)
        if problems:
            raise InvalidInput(problems)
    return rev


def poke_wechat_publish(session: Session, publish_id: str) -> bool:
    """Make the WeChat delivery waiting on job `publish_id` due now; False if none waits."""
    delivery_id = delivery_for_wechat_publish(session, publish_id)
    if delivery_id is not None:
        poke_delivery(session, delivery_id)
    return delivery_id is not None


def delivery_for_wechat_publish(session: Session, publish_id: str) -> int | None:
    """The WeChat delivery waiting on freepublish job `publish_id`, if any.

    While a publish job runs, the delivery's remote id is the job's publish_id.
    """
    found: int | None = session.scalars(
        select(Delivery.id).where(
            Delivery.channel_kind == "wechat",
            Delivery.state == DeliveryState.UNKNOWN,
            Delivery.remote_id == str(publish_id),
        )
    ).first()
    return found


def start_freeze(session: Session, reason: str, *, actor: str) -> Freeze:
    """Hold all publishing and edits of items not marked urgent, organisation-wide.

    Withdrawals still go out. Raises `InvalidInput` without a reason, `Conflict` when a freeze
    is already in force.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput([FieldProblem("reason", "required", "say why publishing is frozen")])
    if active_freeze(session) is not None:
        raise Conflict("a freeze is already in force; lift it first")
    freeze = Freeze(reason=reason, started_by=actor)
    session.add(freeze)
    session.flush()
    audit(session, actor, "freeze.start", f"freeze:{freeze.id}", reason=reason)
    return freeze


def lift_freeze(session: Session, *, actor: str) -> tuple[Freeze, int]:
    """End the freeze; what it held becomes due now. Returns it and how many were woken."""
    freeze = active_freeze(session)
    if freeze is None:
        raise Conflict("no freeze is in force")
    freeze.lifted_at, freeze.lifted_by = utcnow(), actor
    woken = wake_waiting(session, reasons=(WaitReason.FREEZE,))
    audit(session, actor, "freeze.lift", f"freeze:{freeze.id}", woken=woken)
    return freeze, woken


def retry_failed(session: Session, kind: str, *, actor: str) -> int:
    """Start every failed delivery of a channel again, each with a new failure budget."""
    check_kind(kind)
    failed = session.scalars(
        select(Delivery).where(
            Delivery.channel_kind == kind, Delivery.state == DeliveryState.FAILED
        )
    ).all()
    now = utcnow()
    for d in failed:
        d.state = DeliveryState.PENDING
        d.next_attempt_at = now
        d.failing_since = None
        d.consecutive_failures = 0
    enqueue_after_commit(session, [(d.id, d.channel_kind) for d in failed])
    audit(session, actor, "channel.retry_failed", f"channel:{kind}", count=len(failed))
    return len(failed)


def freeze_view(freeze: Freeze | None) -> dict[str, Any]:
    if freeze is None:
        return {"active": False}
    return {
        "active": freeze.lifted_at is None,
        "id": freeze.id,
        "reason": freeze.reason,
        "started_at": freeze.started_at,
        "started_by": freeze.started_by,
        "lifted_at": freeze.lifted_at,
        "lifted_by": freeze.lifted_by,
    }
