"""Whether a channel may be called now: the operator's pause, a channel waiting for
re-authorisation, an organisation-wide freeze and the channel's circuit breaker.

`channel_gate` reads all of it in one statement; `hold` says why a delivery must wait (or
that it may go, possibly as the breaker's one probe); `breaker_failure`, `breaker_success`
and `needs_reauth` record what a call taught us. Functions take the caller's session and
never commit. Imports: models, settings and `delivery.ops` (waking what a closed breaker held).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from publisher.config import Settings
from publisher.delivery.ops import wake_waiting
from publisher.models import Channel as ChannelRow
from publisher.models import Freeze, WaitReason, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hold:
    """Why a delivery waits without calling its channel, and until when."""

    explanation: str
    wait: WaitReason
    next_attempt_in: float | None = None
    until: datetime | None = None


def channel_row(session: Session, kind: str) -> ChannelRow:
    """The operator-visible row of a channel kind, created on first use."""
    row = session.get(ChannelRow, kind)
    if row is None:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(ChannelRow)
            .values(kind=kind, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["kind"])
        )
        row = session.get(ChannelRow, kind)
        assert row is not None
    return row


@dataclass(frozen=True)
class ChannelGate:
    """What decides whether a channel may be called now, read in one statement."""

    paused: bool = False
    paused_reason: str | None = None
    needs_reauth: bool = False
    reauth_reason: str | None = None
    breaker_failures: int = 0
    breaker_open_until: datetime | None = None
    freeze_reason: str | None = None  # the active organisation-wide freeze, if any


def channel_gate(session: Session, kind: str) -> ChannelGate:
    freeze = (
        select(Freeze.reason)
        .where(Freeze.lifted_at.is_(None))
        .order_by(Freeze.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    row = session.execute(
        select(
            ChannelRow.paused,
            ChannelRow.paused_reason,
            ChannelRow.needs_reauth,
            ChannelRow.reauth_reason,
            ChannelRow.breaker_failures,
            ChannelRow.breaker_open_until,
            freeze,
        ).where(ChannelRow.kind == kind)
    ).first()
    if row is None:  # first use of the channel: create its row, then read it
        channel_row(session, kind)
        return channel_gate(session, kind)
    return ChannelGate(*row)


def hold(
    session: Session,
    settings: Settings,
    gate: ChannelGate,
    *,
    kind: str,
    worker: str,
    publishing_held: bool,
) -> Hold | None:
    """Why a delivery of `kind` must wait without calling the channel (None: go ahead).

    Checked in order: the operator's pause, a channel needing re-authorisation, an
    organisation-wide freeze (`publishing_held`: the delivery publishes a non-urgent item;
    withdrawals still go), the channel's open circuit breaker (after its cooldown, one worker
    becomes the probe).
    """
    if gate.paused:
        return Hold(f"channel paused: {gate.paused_reason or ''}", WaitReason.PAUSED, 3600)
    if gate.needs_reauth:
        return Hold(
            f"channel needs re-authorisation: {gate.reauth_reason or ''}", WaitReason.REAUTH, 3600
        )
    if gate.freeze_reason is not None and publishing_held:
        return Hold(f"organisation-wide freeze: {gate.freeze_reason}", WaitReason.FREEZE, 3600)
    now = utcnow()
    open_until = gate.breaker_open_until
    if open_until is None:
        return None
    if open_until <= now and take_probe(session, settings, kind, worker, now):
        return None  # this delivery is the probe
    # Before the cooldown ends, wait for it; after, another worker is probing: wait a
    # cooldown (its success wakes us at once). The jitter spreads the wake-ups.
    until = (
        open_until
        if open_until > now
        else now + timedelta(seconds=settings.breaker_cooldown_seconds)
    )
    return Hold(
        f"circuit open: {gate.breaker_failures} failures in a row on {kind}; "
        f"one probe tests it from {open_until.isoformat(timespec='seconds')}",
        WaitReason.BREAKER,
        until=until + timedelta(seconds=random.uniform(0, 1)),
    )


def take_probe(session: Session, settings: Settings, kind: str, worker: str, now: datetime) -> bool:
    """Make `worker` the one caller that tests an open breaker whose cooldown is over."""
    taken = session.execute(
        update(ChannelRow)
        .where(
            ChannelRow.kind == kind,
            ChannelRow.breaker_open_until <= now,
            or_(ChannelRow.breaker_probe_owner.is_(None), ChannelRow.breaker_probe_expires < now),
        )
        .values(
            breaker_probe_owner=worker,
            breaker_probe_expires=now + timedelta(seconds=settings.lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return bool(getattr(taken, "rowcount", 0) == 1)


def breaker_failure(session: Session, settings: Settings, kind: str, now: datetime) -> None:
    """Count a channel failure; open the breaker at the threshold, or again after a failed
    probe with a doubled cooldown."""
    row = channel_row(session, kind)
    session.refresh(row, with_for_update=True)
    row.breaker_failures += 1
    probing = row.breaker_open_until is not None and row.breaker_open_until <= now
    tripping = row.breaker_open_until is None and (
        row.breaker_failures >= settings.breaker_threshold
    )
    if probing or tripping:
        row.breaker_trips += 1
        cooldown = min(
            settings.breaker_cooldown_cap_seconds,
            settings.breaker_cooldown_seconds * 2 ** (row.breaker_trips - 1),
        )
        row.breaker_open_until = now + timedelta(seconds=cooldown)
        row.breaker_probe_owner = row.breaker_probe_expires = None
        log.warning(
            "circuit breaker for %s open for %.0fs after %d failures",
            kind,
            cooldown,
            row.breaker_failures,
        )


def breaker_success(session: Session, kind: str) -> None:
    """A call went through: close the breaker and wake what it held."""
    closed = session.execute(
        update(ChannelRow)
        .where(
            ChannelRow.kind == kind,
            or_(ChannelRow.breaker_failures > 0, ChannelRow.breaker_open_until.is_not(None)),
        )
        .values(
            breaker_failures=0,
            breaker_trips=0,
            breaker_open_until=None,
            breaker_probe_owner=None,
            breaker_probe_expires=None,
        )
        .returning(ChannelRow.kind)
        .execution_options(synchronize_session=False)
    ).first()
    if closed is not None:
        wake_waiting(session, kind=kind, reasons=(WaitReason.BREAKER,))


def needs_reauth(session: Session, kind: str, reason: str) -> None:
    """The channel refused our credentials: hold its deliveries until an operator renews them."""
    row = channel_row(session, kind)
    row.needs_reauth = True
    row.reauth_reason = reason
