"""Operator controls of channels: status (health, pause, rate budget, circuit breaker, daily
budgets), pause, resume, and renewed credentials.

Services never commit. A credential given here goes only to the shared store (where every
worker's adapter reads it): never into the audit trail, a log or an answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from channels.base import SharedStore, token_key
from channels.budgets import BudgetUse
from channels.registry import KINDS
from publisher.audit import audit
from publisher.delivery.gate import channel_row
from publisher.delivery.ops import wake_waiting
from publisher.delivery.publication import (
    ChannelPool,
    check_kind,
)
from publisher.errors import FieldProblem, InvalidInput
from publisher.models import Channel as ChannelRow
from publisher.models import (
    WaitReason,
    utcnow,
)
from publisher.services.queries import counts_by_state

log = logging.getLogger(__name__)


def enabled_kinds(pool: ChannelPool) -> list[str]:
    return [kind for kind in KINDS if pool.disabled_reason(kind) is None]


def disabled_map(pool: ChannelPool) -> dict[str, str | None]:
    return {kind: pool.disabled_reason(kind) for kind in KINDS}


def build_adapters(pool: ChannelPool) -> None:
    """Build every adapter now (a no-op once they are built).

    Call this before opening a database session: on SQLite, building an adapter may read the
    shared store (the same database, its own transaction), which would wait on the open one.
    """
    for kind in KINDS:
        pool.disabled_reason(kind)


@dataclass
class Readings:
    """What an enabled adapter says of itself: its health and today's daily budgets."""

    health: dict[str, Any] = field(default_factory=dict)
    budgets: list[dict[str, Any]] = field(default_factory=list)


def warm_pool(pool: ChannelPool) -> dict[str, Readings]:
    """`build_adapters`, then read each enabled adapter's health and budgets (both may read
    the shared store, neither calls the channel); returns them per enabled kind."""
    build_adapters(pool)
    readings: dict[str, Readings] = {}
    for kind in KINDS:
        if pool.disabled_reason(kind) is None:
            readings[kind] = _read(pool, kind)
    return readings


def _read(pool: ChannelPool, kind: str) -> Readings:
    adapter = pool.get(kind)
    try:
        health = adapter.health()
    except Exception as exc:  # a status page must not fail on one channel's bug
        health = {"error": str(exc)}
    try:
        budgets = [budget_view(use) for use in adapter.budget_usage()]
    except Exception as exc:
        log.warning("%s: its daily budgets cannot be read: %s", kind, exc)
        budgets = []
    return Readings(health, budgets)


def budget_view(use: BudgetUse) -> dict[str, Any]:
    return {
        "endpoint": use.endpoint,
        "used": use.used,
        "limit": use.limit,
        "left": use.left,
        "resets_at": use.resets_at.isoformat(),
    }


def channel_statuses(
    session: Session, pool: ChannelPool, readings: dict[str, Readings]
) -> list[dict[str, Any]]:
    """One entry per kind: enabled (or why not), paused, needs re-authorisation, counts,
    circuit breaker, daily budgets and health.

    `readings` come from `warm_pool`, called before `session` began.
    """
    counts = counts_by_state(session)
    now = utcnow()
    out = []
    for kind in KINDS:
        row = session.get(ChannelRow, kind)
        reason = pool.disabled_reason(kind)
        reading = readings.get(kind, Readings())
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
                "rate_budget": _rate_budget(reading.health),
                "breaker": breaker_view(row, now),
                "budgets": reading.budgets,
                "health": reading.health,
            }
        )
    return out


def breaker_view(row: ChannelRow | None, now: datetime) -> dict[str, Any]:
    """The channel's circuit breaker: `closed`; `open` until its cooldown ends (the next
    probe then); or `half_open`: the cooldown is over and one probe, owned by `probe_owner`
    until its lease ends (or by the next worker to come), tests the channel."""
    failures = row.breaker_failures if row else 0
    open_until = row.breaker_open_until if row else None
    view: dict[str, Any] = {
        "state": "closed",
        "failures": failures,
        "open_until": None,
        "probe_owner": None,
        "next_probe_at": None,
    }
    if row is None or open_until is None:
        return view
    view["open_until"] = open_until.isoformat()
    if open_until > now:
        return {**view, "state": "open", "next_probe_at": open_until.isoformat()}
    expires = row.breaker_probe_expires
    probing = row.breaker_probe_owner is not None and expires is not None and expires > now
    return {
        **view,
        "state": "half_open",
        "probe_owner": row.breaker_probe_owner if probing else None,
        "next_probe_at": (expires if probing and expires else now).isoformat(),
    }


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

    Raises `NotFound`, `InvalidInput`, `SecretKeyMissing` (a `Conflict`: no key to seal it
    with). Call it outside any open session (see `warm_pool`). The token is never audited,
    logged or echoed, and the store keeps it sealed.
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
                    values={"value": kind},
                )
            ]
        )
    token = (access_token or "").strip()
    if not token:
        raise InvalidInput(
            [FieldProblem("access_token", "required", "access_token must not be empty")]
        )
    shared.set(token_key(kind), token)


def credentials_renewed(session: Session, kind: str, *, actor: str) -> int:
    """After `store_credentials`: clear "needs re-authorisation" and make the channel's waiting
    deliveries due now. Returns how many were woken."""
    check_kind(kind)
    row = channel_row(session, kind)
    row.needs_reauth, row.reauth_reason = False, None
    woken = wake_waiting(session, kind=kind, reasons=(WaitReason.REAUTH, WaitReason.DISABLED))
    audit(session, actor, "channel.credentials", f"channel:{kind}", woken=woken)
    return woken
