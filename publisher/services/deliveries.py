"""The delivery engine: bring one channel in line with one item's desired state.

`sync_delivery` is level-triggered. It claims the row with a conditional UPDATE and a lease
(so a duplicate or stale message is a no-op), reads the *current* desired state and what the
channel was last known to hold, and does the one action that closes the gap: look up, create,
update, delete or nothing. Every call to a channel is an `Attempt` row written before the call
(outcome `started`) and completed after it, each in its own short transaction; that is why this
module, unlike the other services, commits: the remote call must sit between two commits.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, String, Table, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, lazyload

from channels.base import Channel, Publication, Receipt, Remote, SharedStore
from channels.errors import (
    AuthExpired,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    RateLimited,
    Retryable,
)
from channels.registry import KINDS, ChannelDisabled, build_channel, channel_class
from publisher.config import Settings
from publisher.db import Database, enqueue_after_commit
from publisher.errors import Conflict, NotFound
from publisher.models import (
    CLAIMABLE_STATES,
    WEBSITE_WAIT_SECONDS,
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryState,
    Domain,
    Freeze,
    Item,
    Revision,
    WaitReason,
    utcnow,
)
from publisher.models import Channel as ChannelRow

log = logging.getLogger(__name__)

# Attempt rows are only ever inserted and finished here, never read back during a sync: plain
# Core statements on the table skip the ORM's unit of work on the hot path.
ATTEMPTS = cast(Table, Attempt.__table__)

Action = Literal["create", "update", "delete", "lookup"]


def backoff_seconds(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Capped exponential backoff with "equal jitter": half fixed, half random.

    `failures` counts consecutive failures (1 for the first). The fixed half keeps retries
    from bunching at zero; the random half spreads workers that failed together.
    """
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


# --- claiming --------------------------------------------------------------------------------


def is_due(now: datetime) -> ColumnElement[bool]:
    """Deliveries a worker may take now: due and unclaimed, or held by an expired lease."""
    return or_(
        Delivery.state.in_(CLAIMABLE_STATES) & (Delivery.next_attempt_at <= now),
        (Delivery.state == DeliveryState.RUNNING) & (Delivery.lease_expires_at < now),
    )


def claim(
    session: Session, delivery_id: int, worker: str, lease_seconds: float, now: datetime
) -> Delivery | None:
    """Take the delivery for `worker` if it is due; returns it, row-locked until commit.

    The conditional UPDATE is the claim and its RETURNING the read: one statement."""
    return session.scalars(
        update(Delivery)
        .where(Delivery.id == delivery_id, is_due(now))
        .values(
            state=DeliveryState.RUNNING,
            lease_owner=worker,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
        .returning(Delivery),
        execution_options={"populate_existing": True},
    ).first()


def claim_delivery(
    session: Session, delivery_id: int, worker: str, lease_seconds: float, now: datetime
) -> bool:
    """Take the delivery for `worker` if it is due (the conditional UPDATE is the lock)."""
    return claim(session, delivery_id, worker, lease_seconds, now) is not None


def due_deliveries(
    session: Session, now: datetime, *, resend_after: float, per_channel: int = 200
) -> list[tuple[int, str]]:
    """Due deliveries not handed to the broker in the last `resend_after` seconds, at most
    `per_channel` of each kind (so one channel's backlog never hides another's), marked as
    dispatched now. A message that was lost is sent again once `resend_after` has passed."""
    cutoff = now - timedelta(seconds=resend_after)
    found: list[tuple[int, str]] = []
    for kind in KINDS:
        rows = session.execute(
            select(Delivery.id)
            .where(
                Delivery.channel_kind == kind,
                is_due(now),
                or_(Delivery.dispatched_at.is_(None), Delivery.dispatched_at < cutoff),
            )
            .order_by(Delivery.next_attempt_at)
            .limit(per_channel)
            # A row locked now is being changed (an edit, a claim) and dispatched by that
            # change; waiting for it would deadlock with an edit locking the item's rows.
            .with_for_update(skip_locked=True)
        ).scalars()
        found.extend((int(delivery_id), kind) for delivery_id in rows)
    if found:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([delivery_id for delivery_id, _ in found]))
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
    return found


# --- building what the channel sees ----------------------------------------------------------


def build_publication(
    session: Session,
    settings: Settings,
    item: Item,
    rev: Revision,
    website_url: str | None,
) -> Publication:
    tz = ZoneInfo(settings.timezone)
    published = (item.published_at or datetime.now(UTC)).astimezone(tz).date()
    return Publication(
        item_id=item.id,
        revision_id=rev.id,
        revision_number=rev.number,
        external_id=f"item-{item.id}",
        title=rev.title,
        short_title=rev.short_title,
        summary=rev.summary or "",
        body_html=_MEDIA_LINK.sub(
            lambda m: m.group(1) + (absolute_media_url(settings, m.group(2)) or ""), rev.body_html
        ),
        domain_code=item.domain_code,
        domain_name=item.domain.name,
        catecode=item.domain.catecode,
        department_code=item.department_code,
        department_name=item.department.name,
        org_code=settings.org_code,
        index_no=item.index_no or "",
        written_date=rev.formed_on,
        publish_date=published,
        content_hash=rev.content_hash,
        doc_no=rev.doc_number,
        keywords=tuple(rev.keywords or ()),
        cover_image_url=absolute_media_url(settings, rev.cover_image),
        website_url=website_url,
        push_tags=None if item.push_tags is None else tuple(item.push_tags),
    )


# Our own uploads are linked as "/media/<sha256>"; channels fetch them from our public URL.
_MEDIA_LINK = re.compile(r'((?:src|href)=")(/media/[0-9a-f]{64})')


def absolute_media_url(settings: Settings, url: str | None) -> str | None:
    if url and url.startswith("/"):
        base = settings.public_base_url or f"http://{settings.api_host}:{settings.api_port}"
        return base.rstrip("/") + url
    return url


def website_url_of(session: Session, item_id: int) -> str | None:
    return session.scalars(
        select(Delivery.remote_url).where(
            Delivery.item_id == item_id,
            Delivery.channel_kind == "website",
            Delivery.desired_present.is_(True),
        )
    ).first()


# --- the engine ------------------------------------------------------------------------------


@dataclass
class Step:
    action: Action
    pub: Publication | None
    remote: Remote | None
    # The desired state this step was planned for; if it moved during the call, the result is
    # recorded but the delivery is planned again instead of being settled.
    desired_revision_id: int | None = None
    desired_present: bool = True
    # The channel's breaker was closed with no failures counted when the step was planned:
    # its success then has nothing to reset.
    channel_healthy: bool = False

    def outdated(self, d: Delivery) -> bool:
        return (d.desired_revision_id, d.desired_present) != (
            self.desired_revision_id,
            self.desired_present,
        )


@dataclass
class Settle:
    state: DeliveryState
    explanation: str | None = None
    next_attempt_in: float | None = None
    until: datetime | None = None
    wait: WaitReason | None = None


@dataclass
class SyncResult:
    delivery_id: int
    claimed: bool
    state: DeliveryState | None = None
    actions: list[str] = field(default_factory=list)


class ChannelPool:
    """Adapters built once per process. A disabled channel remembers why for a short while
    (`DISABLED_TTL`), so that configuration given at run time is picked up without a restart."""

    DISABLED_TTL = 30.0

    def __init__(self, settings: Settings, shared: SharedStore) -> None:
        self.settings = settings
        self.shared = shared
        self._channels: dict[str, Channel | ChannelDisabled] = {}
        self._disabled_at: dict[str, float] = {}

    def get(self, kind: str) -> Channel:
        cached = self._channels.get(kind)
        if isinstance(cached, ChannelDisabled) and (
            time.monotonic() - self._disabled_at.get(kind, 0.0) > self.DISABLED_TTL
        ):
            del self._channels[kind]
        if kind not in self._channels:
            try:
                self._channels[kind] = build_channel(kind, self.settings, self.shared)
            except ChannelDisabled as exc:
                self._channels[kind] = exc
            except ImportError as exc:  # a broken or missing adapter disables its channel only
                self._channels[kind] = ChannelDisabled(f"{kind}: adapter not available ({exc})")
            self._disabled_at[kind] = time.monotonic()
        found = self._channels[kind]
        if isinstance(found, ChannelDisabled):
            raise found
        return found

    def forget(self, kind: str) -> None:
        """Build `kind` again on next use (its configuration changed)."""
        self._channels.pop(kind, None)

    def disabled_reason(self, kind: str) -> str | None:
        try:
            self.get(kind)
        except ChannelDisabled as exc:
            return str(exc)
        return None


class DeliveryEngine:
    def __init__(self, database: Database, settings: Settings, pool: ChannelPool) -> None:
        self.database = database
        self.settings = settings
        self.pool = pool

    def sync(self, delivery_id: int, worker: str, max_steps: int = 4) -> SyncResult:
        """Claim the delivery and close the gap with at most `max_steps` channel calls.

        Two short transactions per call: one claims (or records the previous call), plans and
        writes the attempt row; the other records the outcome. Each re-reads the delivery
        under a row lock and checks the lease; a worker that lost it stops without writing.
        """
        result = SyncResult(delivery_id, claimed=False)
        with self.database.session() as session:
            d = claim(session, delivery_id, worker, self.settings.lease_seconds, utcnow())
            if d is None:
                return result
            result.claimed = True
            self._abandon_unfinished(session, d)
            step = self._next_step(session, d, worker, result)
        while step is not None:
            plan, attempt, channel = step
            result.actions.append(plan.action)
            started = time.monotonic()
            try:
                with self._lease_kept(delivery_id, worker):
                    receipt = self._call(channel, plan)
            except Exception as exc:
                if not isinstance(exc, ChannelError):  # a bug of ours: retry later
                    log.exception("adapter %s crashed on delivery %s", channel.kind, delivery_id)
                    exc = Retryable(f"internal error in the {channel.kind} adapter: {exc!r}")
                with self.database.session() as session:
                    result.state = self._record_error(
                        session, delivery_id, worker, attempt, plan, exc, started
                    )
                return result
            with self.database.session() as session:
                d = self._locked(session, delivery_id, worker)
                if d is None:  # the new owner looks the channel up before it writes
                    self._finish_attempt(session, attempt, AttemptOutcome.ABANDONED, started)
                    result.state = DeliveryState.RUNNING
                    return result
                stopped = self._record_success(session, d, attempt, plan, receipt, started)
                if stopped is not None:
                    result.state = stopped
                    return result
                if len(result.actions) >= max_steps:  # hand back to the queue
                    self._settle(session, d, Settle(DeliveryState.PENDING, next_attempt_in=0))
                    result.state = d.state
                    return result
                step = self._next_step(session, d, worker, result)
        return result

    @contextmanager
    def _lease_kept(self, delivery_id: int, worker: str) -> Iterator[None]:
        """Renew the lease every third of its length while a channel call runs, so that a slow
        call (a WeChat publish is several requests) is never taken over half-way."""
        stop = threading.Event()
        every = max(0.5, self.settings.lease_seconds / 3)

        def renew() -> None:
            while not stop.wait(every):
                try:
                    with self.database.session() as session:
                        session.execute(
                            update(Delivery)
                            .where(Delivery.id == delivery_id, Delivery.lease_owner == worker)
                            .values(
                                lease_expires_at=utcnow()
                                + timedelta(seconds=self.settings.lease_seconds)
                            )
                            .execution_options(synchronize_session=False)
                        )
                except Exception:  # the store is unreachable: the lease may lapse, as designed
                    log.warning("could not renew the lease of delivery %s", delivery_id)

        keeper = threading.Thread(target=renew, name=f"lease-{delivery_id}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()

    def _next_step(
        self, session: Session, d: Delivery, worker: str, result: SyncResult
    ) -> tuple[Step, int, Channel] | None:
        """Plan for `d`, row-locked and leased by `worker`: settle (None) or start an attempt
        for the next call."""
        plan = self._plan(session, d, worker)
        if isinstance(plan, Settle):
            self._settle(session, d, plan)
            result.state = d.state
            return None
        d.lease_expires_at = utcnow() + timedelta(seconds=self.settings.lease_seconds)
        attempt = self._start_attempt(session, d, plan, worker)
        return plan, attempt, self.pool.get(d.channel_kind)

    def _locked(self, session: Session, delivery_id: int, worker: str) -> Delivery | None:
        """The delivery, row-locked, if `worker` still holds its lease; else None."""
        d = session.get(
            Delivery, delivery_id, with_for_update={"key_share": True}, populate_existing=True
        )
        if d is None or d.state != DeliveryState.RUNNING or d.lease_owner != worker:
            log.warning("delivery %s: lease lost by %s; stopping", delivery_id, worker)
            return None
        return d

    # planning

    def _plan(self, session: Session, d: Delivery, worker: str) -> Step | Settle:
        """The one action that closes the gap, or how to settle. What a settled delivery needs
        (nothing more to do) is decided from the row alone; the item, its revision, the
        website's URL and the channel's gate are read only when a call is due."""
        reads = PlanReads(session, self.settings, d)
        decision = self._decide(d, reads)
        if isinstance(decision, Settle) and decision.state in (
            DeliveryState.LIVE,
            DeliveryState.WITHDRAWN,
        ):
            return decision
        gate = channel_gate(session, d.channel_kind)
        held = self._hold(session, d, worker, gate, reads)
        if held is not None:
            return held
        try:
            self.pool.get(d.channel_kind)
        except ChannelDisabled as exc:
            return Settle(
                DeliveryState.DEFERRED,
                f"channel disabled: {exc}",
                next_attempt_in=300,
                wait=WaitReason.DISABLED,
            )
        if isinstance(decision, Step):
            decision.channel_healthy = not gate.breaker_failures and gate.breaker_open_until is None
        return decision

    def _decide(self, d: Delivery, reads: PlanReads) -> Step | Settle:
        state = d.remote_state or {}
        remote = (
            Remote(d.remote_id or "", d.remote_url, dict(state))
            if d.remote_id or state.get("incomplete")
            else None
        )
        website_url, pub_for = reads.website_url, reads.publication

        if state.get("uncertain") or state.get("incomplete"):
            attempted = state.get("attempted_revision_id") or d.desired_revision_id
            looked_for = pub_for(attempted)
            if looked_for is not None and state.get("attempted_website_url"):
                # Search for what was sent, with the link it carried: once the item is
                # retracted the website page is gone, but the post may still link to it.
                looked_for = replace(looked_for, website_url=state["attempted_website_url"])
            return Step("lookup", looked_for, remote, d.desired_revision_id, d.desired_present)
        if not d.desired_present:
            if remote is None:
                return Settle(DeliveryState.WITHDRAWN)
            return Step(
                "delete", pub_for(d.applied_revision_id), remote, d.desired_revision_id, False
            )
        if remote is not None and d.applied_revision_id == d.desired_revision_id:
            return Settle(DeliveryState.LIVE)
        if channel_class(d.channel_kind).needs_website_url and not website_url():
            # Parked until the website page exists: its going live wakes this delivery.
            return Settle(
                DeliveryState.DEFERRED,
                "waiting for the website page to exist",
                next_attempt_in=WEBSITE_WAIT_SECONDS,
                wait=WaitReason.WEBSITE,
            )
        pub = pub_for(d.desired_revision_id)
        action: Action = "create" if remote is None else "update"
        return Step(action, pub, remote, d.desired_revision_id, True)

    def _hold(
        self, session: Session, d: Delivery, worker: str, row: ChannelGate, reads: PlanReads
    ) -> Settle | None:
        """Why the delivery must wait without calling the channel (None: go ahead).

        Checked in order: the operator's pause, a channel needing re-authorisation, an
        organisation-wide freeze (publishing of non-urgent items; withdrawals still go), the
        channel's open circuit breaker (after its cooldown, one worker becomes the probe).
        """
        if row.paused:
            return Settle(
                DeliveryState.DEFERRED,
                f"channel paused: {row.paused_reason or ''}",
                next_attempt_in=3600,
                wait=WaitReason.PAUSED,
            )
        if row.needs_reauth:
            return Settle(
                DeliveryState.DEFERRED,
                f"channel needs re-authorisation: {row.reauth_reason or ''}",
                next_attempt_in=3600,
                wait=WaitReason.REAUTH,
            )
        if row.freeze_reason is not None and d.desired_present and not reads.item().urgent:
            return Settle(
                DeliveryState.DEFERRED,
                f"organisation-wide freeze: {row.freeze_reason}",
                next_attempt_in=3600,
                wait=WaitReason.FREEZE,
            )
        now = utcnow()
        open_until = row.breaker_open_until
        if open_until is None:
            return None
        if open_until <= now and self._take_probe(session, d.channel_kind, worker, now):
            return None  # this delivery is the probe
        # Before the cooldown ends, wait for it; after, another worker is probing: wait a
        # cooldown (its success wakes us at once). The jitter spreads the wake-ups.
        until = (
            open_until
            if open_until > now
            else now + timedelta(seconds=self.settings.breaker_cooldown_seconds)
        )
        return Settle(
            DeliveryState.DEFERRED,
            f"circuit open: {row.breaker_failures} failures in a row on {d.channel_kind}; "
            f"one probe tests it from {open_until.isoformat(timespec='seconds')}",
            until=until + timedelta(seconds=random.uniform(0, 1)),
            wait=WaitReason.BREAKER,
        )

    def _take_probe(self, session: Session, kind: str, worker: str, now: datetime) -> bool:
        taken = session.execute(
            update(ChannelRow)
            .where(
                ChannelRow.kind == kind,
                ChannelRow.breaker_open_until <= now,
                or_(
                    ChannelRow.breaker_probe_owner.is_(None), ChannelRow.breaker_probe_expires < now
                ),
            )
            .values(
                breaker_probe_owner=worker,
                breaker_probe_expires=now + timedelta(seconds=self.settings.lease_seconds),
            )
            .execution_options(synchronize_session=False)
        )
        session.expire_all()
        return bool(getattr(taken, "rowcount", 0) == 1)

    def _breaker_failure(self, session: Session, kind: str, now: datetime) -> None:
        """Count a channel failure; open the breaker at the threshold, or again after a
        failed probe with a doubled cooldown."""
        row = channel_row(session, kind)
        session.refresh(row, with_for_update=True)
        row.breaker_failures += 1
        probing = row.breaker_open_until is not None and row.breaker_open_until <= now
        tripping = row.breaker_open_until is None and (
            row.breaker_failures >= self.settings.breaker_threshold
        )
        if probing or tripping:
            row.breaker_trips += 1
            cooldown = min(
                self.settings.breaker_cooldown_cap_seconds,
                self.settings.breaker_cooldown_seconds * 2 ** (row.breaker_trips - 1),
            )
            row.breaker_open_until = now + timedelta(seconds=cooldown)
            row.breaker_probe_owner = row.breaker_probe_expires = None
            log.warning(
                "circuit breaker for %s open for %.0fs after %d failures",
                kind,
                cooldown,
                row.breaker_failures,
            )

    def _breaker_success(self, session: Session, kind: str) -> None:
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

    def _call(self, channel: Channel, step: Step) -> Receipt | None:
        if step.action == "lookup":
            assert step.pub is not None
            return channel.lookup(step.pub, step.remote)
        if step.action == "delete":
            assert step.remote is not None
            channel.delete(step.remote)
            return None
        assert step.pub is not None
        if step.action == "update":
            assert step.remote is not None
            return channel.update(step.pub, step.remote)
        return channel.create(step.pub)

    # recording

    def _abandon_unfinished(self, session: Session, d: Delivery) -> None:
        """Attempts left `started` by a worker that died; their outcome is unknown.

        Starting an attempt marks the delivery `in_flight` in the same commit, and recording
        it clears the mark: without the mark there is no unfinished attempt to look for."""
        state = dict(d.remote_state or {})
        if not state.get("in_flight"):
            return
        session.execute(
            update(Attempt)
            .where(Attempt.delivery_id == d.id, Attempt.outcome == AttemptOutcome.STARTED)
            .values(
                outcome=AttemptOutcome.ABANDONED,
                finished_at=utcnow(),
                explanation="the worker stopped during this call; its lease expired",
            )
            .execution_options(synchronize_session=False)
        )
        # A write may have reached the channel before the worker died: look before writing.
        state["uncertain"] = True
        state.pop("in_flight", None)
        d.remote_state = state

    def _start_attempt(self, session: Session, d: Delivery, step: Step, worker: str) -> int:
        d.attempt_count += 1
        state = dict(d.remote_state or {})
        if step.action in ("create", "update"):
            assert step.pub is not None
            state["attempted_revision_id"] = step.pub.revision_id
            if step.pub.website_url:
                state["attempted_website_url"] = step.pub.website_url
        state["in_flight"] = step.action
        d.remote_state = state
        attempt_id: int = session.execute(
            insert(ATTEMPTS)
            .values(
                delivery_id=d.id,
                number=d.attempt_count,
                action=step.action,
                revision_id=step.pub.revision_id if step.pub else None,
                worker=worker,
            )
            .returning(ATTEMPTS.c.id)
        ).scalar_one()
        return attempt_id

    def _finish_attempt(
        self,
        session: Session,
        attempt_id: int,
        outcome: AttemptOutcome,
        started: float,
        exc: ChannelError | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "outcome": outcome,
            "finished_at": utcnow(),
            "duration_ms": int((time.monotonic() - started) * 1000),
        }
        if outcome == AttemptOutcome.ABANDONED:
            values["explanation"] = "the lease ran out during this call; another worker took over"
        if exc is not None:
            values.update(
                error_kind=exc.kind,
                error_code=exc.code,
                error_message=exc.message,
                explanation=exc.explanation,
                http_status=exc.http_status,
            )
        session.execute(update(ATTEMPTS).where(ATTEMPTS.c.id == attempt_id).values(**values))

    def _record_success(
        self,
        session: Session,
        d: Delivery,
        attempt_id: int,
        step: Step,
        receipt: Receipt | None,
        started: float,
    ) -> DeliveryState | None:
        """Apply the channel's answer to `d` (row-locked, still ours). Returns a state when
        this worker must stop."""
        self._finish_attempt(session, attempt_id, AttemptOutcome.OK, started)
        if not step.channel_healthy:
            self._breaker_success(session, d.channel_kind)
        d.wait_reason = None
        state = dict(d.remote_state or {})
        state.pop("in_flight", None)
        state.pop("uncertain", None)
        if step.action != "lookup" or receipt is not None:
            # A lookup that finds nothing proves nothing went out: the write that made us look
            # still counts against the failure budget, so a create that keeps ending uncertain
            # cannot loop forever.
            d.consecutive_failures = 0
            d.failing_since = None
            d.last_error_kind = d.last_error_code = d.last_error_message = None
            d.explanation = None
        if step.action == "delete":
            d.remote_id = d.remote_url = None
            d.applied_revision_id = None
            d.remote_state = {}
            return None
        if receipt is None:  # a lookup that found nothing
            d.remote_id = d.remote_url = None
            d.applied_revision_id = None
            state.pop("incomplete", None)
            d.remote_state = state
            return None
        state.update(receipt.state)
        d.remote_id = receipt.remote_id
        d.remote_url = receipt.url or d.remote_url
        if not receipt.complete and step.outdated(d):
            # The item changed while the channel was working on the old revision: keep what
            # the channel told us and plan again (the next step looks the job up first).
            state["incomplete"] = True
            d.remote_state = state
            return None
        if not receipt.complete:
            state["incomplete"] = True
            d.remote_state = state
            d.state = DeliveryState.UNKNOWN
            d.explanation = "accepted by the channel; waiting for it to finish publishing"
            d.next_attempt_at = utcnow() + timedelta(seconds=receipt.poll_after or 60)
            d.lease_owner = d.lease_expires_at = None
            return d.state
        state.pop("incomplete", None)
        d.applied_revision_id = self._revision_for(session, d, step, receipt, state)
        d.remote_state = state
        return None

    def _revision_for(
        self, session: Session, d: Delivery, step: Step, receipt: Receipt, state: dict[str, Any]
    ) -> int | None:
        if (
            receipt.content_hash
            and step.pub is not None
            and receipt.content_hash == step.pub.content_hash
            and step.pub.revision_id == d.desired_revision_id
        ):
            return d.desired_revision_id  # the newest revision, as sent: nothing to search
        if receipt.content_hash:
            found = session.scalars(
                select(Revision.id)
                .where(Revision.item_id == d.item_id, Revision.content_hash == receipt.content_hash)
                .order_by(Revision.number.desc())
            ).first()
            if found is not None:
                return found
        if step.action == "lookup":
            # A copy was found but the channel cannot tell which revision it shows (Weibo's
            # post found by its id or link, not its text): the next step brings it up to date.
            return None
        attempted = state.get("attempted_revision_id")
        return int(attempted) if attempted else d.desired_revision_id

    def _record_error(
        self,
        session: Session,
        delivery_id: int,
        worker: str,
        attempt_id: int,
        step: Step,
        exc: ChannelError,
        started: float,
    ) -> DeliveryState:
        d = self._locked(session, delivery_id, worker)
        if d is None:  # another worker owns the delivery now; only the attempt is ours
            self._finish_attempt(session, attempt_id, AttemptOutcome.ABANDONED, started, exc)
            return DeliveryState.RUNNING
        now = utcnow()
        state = dict(d.remote_state or {})
        state.pop("in_flight", None)
        if step.action == "lookup" and isinstance(exc, Permanent):
            # The channel refused the job we were waiting on (e.g. WeChat did not publish
            # it): nothing is out there, so a retry or an edit starts over with a new write.
            for key in ("incomplete", "uncertain", "publish_id", "correction_publish_id"):
                state.pop(key, None)
            if not d.applied_revision_id:
                d.remote_id = d.remote_url = None
        d.wait_reason = None
        d.last_error_kind, d.last_error_code = exc.kind, exc.code
        d.last_error_message, d.explanation = exc.message, exc.explanation
        d.lease_owner = d.lease_expires_at = None
        budget = timedelta(seconds=self.settings.failure_budget_seconds)
        if isinstance(exc, OutcomeUnknown):
            outcome, d.state = AttemptOutcome.UNKNOWN, DeliveryState.UNKNOWN
            state["uncertain"] = True
            d.failing_since = d.failing_since or now
            d.next_attempt_at = now + timedelta(seconds=self._backoff(d, now))
            if now - d.failing_since > budget:  # `uncertain` stays: a retry looks up first
                outcome, d.state = AttemptOutcome.FAILED, DeliveryState.FAILED
                d.explanation = f"{exc.explanation}; still uncertain after {budget}, gave up"
        elif isinstance(exc, RateLimited):
            outcome, d.state = AttemptOutcome.DEFERRED, DeliveryState.DEFERRED
            d.wait_reason = WaitReason.RATE_LIMIT
            d.next_attempt_at = max(exc.until, now)
            d.explanation = f"{exc.explanation}; waits until {exc.until.isoformat()}"
        elif isinstance(exc, AuthExpired):
            outcome, d.state = AttemptOutcome.DEFERRED, DeliveryState.DEFERRED
            d.wait_reason = WaitReason.REAUTH
            self._needs_reauth(session, d.channel_kind, exc)
            d.next_attempt_at = now + timedelta(hours=1)
        elif isinstance(exc, Permanent):
            outcome, d.state = AttemptOutcome.FAILED, DeliveryState.FAILED
        else:
            delay = (exc.retry_after if isinstance(exc, Retryable) else None) or self._backoff(
                d, now
            )
            d.failing_since = d.failing_since or now
            if now - d.failing_since > budget:
                outcome, d.state = AttemptOutcome.FAILED, DeliveryState.FAILED
                d.explanation = f"{exc.explanation}; still failing after {budget}, gave up"
            else:
                outcome, d.state = AttemptOutcome.RETRY, DeliveryState.RETRYING
                d.next_attempt_at = now + timedelta(seconds=delay)
        d.remote_state = state
        if isinstance(exc, Retryable | OutcomeUnknown):  # the channel, not the content, failed
            self._breaker_failure(session, d.channel_kind, now)
        self._finish_attempt(session, attempt_id, outcome, started, exc)
        if step.outdated(d) and d.state in (DeliveryState.FAILED, DeliveryState.RETRYING):
            # The editor changed the item during the call (perhaps fixing what the channel
            # refused): the failure was about a revision nobody wants any more.
            d.state, d.next_attempt_at = DeliveryState.PENDING, now
            d.failing_since, d.consecutive_failures = None, 0
            enqueue_after_commit(session, [(d.id, d.channel_kind)])
            return d.state
        if d.state in (DeliveryState.RETRYING, DeliveryState.UNKNOWN, DeliveryState.DEFERRED):
            delay = (d.next_attempt_at - now).total_seconds()
            if delay < 3600:  # longer waits are left to the sweeper
                enqueue_after_commit(session, [(d.id, d.channel_kind)], countdown=delay)
        return d.state

    def _backoff(self, d: Delivery, now: datetime) -> float:
        d.consecutive_failures += 1
        return backoff_seconds(
            d.consecutive_failures,
            self.settings.backoff_base_seconds,
            self.settings.backoff_cap_seconds,
        )

    def _needs_reauth(self, session: Session, kind: str, exc: AuthExpired) -> None:
        row = channel_row(session, kind)
        row.needs_reauth = True
        row.reauth_reason = str(exc)

    def _settle(self, session: Session, d: Delivery, plan: Settle) -> None:
        now = utcnow()
        d.state = plan.state
        d.lease_owner = d.lease_expires_at = None
        if plan.explanation is not None or plan.state in (
            DeliveryState.LIVE,
            DeliveryState.WITHDRAWN,
        ):
            d.explanation = plan.explanation
        if plan.next_attempt_in is not None:
            d.next_attempt_at = now + timedelta(seconds=plan.next_attempt_in)
        if plan.until is not None:
            d.next_attempt_at = plan.until
        d.wait_reason = plan.wait
        if plan.state == DeliveryState.LIVE:
            d.live_at = d.live_at or now
            d.last_error_kind = d.last_error_code = d.last_error_message = None
            if d.channel_kind == "website":
                self._wake_dependents(session, d)
        if plan.state == DeliveryState.WITHDRAWN:
            d.live_at = None
        if plan.state == DeliveryState.PENDING and plan.next_attempt_in == 0:
            enqueue_after_commit(session, [(d.id, d.channel_kind)])

    def _wake_dependents(self, session: Session, website: Delivery) -> None:
        # A row locked now is being rewritten (an edit, a claim) and made due by it anyway.
        waiting = (
            select(Delivery.id)
            .where(
                Delivery.item_id == website.item_id,
                Delivery.channel_kind != "website",
                Delivery.state.in_((DeliveryState.PENDING, DeliveryState.DEFERRED)),
                Delivery.wait_reason == WaitReason.WEBSITE,
            )
            .with_for_update(skip_locked=True)
        )
        now = utcnow()
        woken = session.execute(
            update(Delivery)
            .where(Delivery.id.in_(waiting.scalar_subquery()))
            .values(next_attempt_at=now, dispatched_at=now)
            .returning(Delivery.id, Delivery.channel_kind)
            .execution_options(synchronize_session=False)
        ).all()
        enqueue_after_commit(session, [(int(i), str(kind)) for i, kind in woken], marked=True)


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


class PlanReads:
    """What planning one delivery reads, each at most once: its item (with domain and
    department), a revision and the website page's URL, together in one query."""

    def __init__(self, session: Session, settings: Settings, d: Delivery) -> None:
        self.session = session
        self.settings = settings
        self.d = d
        self._item: Item | None = None
        self._revisions: dict[int, Revision] = {}
        self._url: str | None = None

    def _load(self, revision_id: int | None) -> Item:
        if self._item is not None:
            return self._item
        d = self.d
        link = (
            literal(d.remote_url, String)
            if d.channel_kind == "website"
            else select(Delivery.remote_url)
            .where(
                Delivery.item_id == d.item_id,
                Delivery.channel_kind == "website",
                Delivery.desired_present.is_(True),
            )
            .scalar_subquery()
        )
        item, rev, self._url = self.session.execute(
            select(Item, Revision, link)
            .outerjoin(Revision, (Revision.item_id == Item.id) & (Revision.id == revision_id))
            .where(Item.id == d.item_id)
            .options(lazyload(Item.domain, Domain.departments))
        ).one()
        if rev is not None:
            self._revisions[rev.id] = rev
        self._item = item
        return item

    def item(self) -> Item:
        return self._load(self.d.desired_revision_id)

    def website_url(self) -> str | None:
        self._load(self.d.desired_revision_id)
        return self._url

    def publication(self, revision_id: int | None) -> Publication | None:
        if revision_id is None:
            return None
        item = self._load(revision_id)
        rev = self._revisions.get(revision_id) or self.session.get(Revision, revision_id)
        assert rev is not None
        return build_publication(self.session, self.settings, item, rev, self._url)


def active_freeze(session: Session) -> Freeze | None:
    return session.scalars(
        select(Freeze).where(Freeze.lifted_at.is_(None)).order_by(Freeze.id.desc())
    ).first()


def wake_waiting(
    session: Session, *, kind: str | None = None, reasons: tuple[WaitReason, ...]
) -> int:
    """Make the deliveries waiting for one of `reasons` due now (after this commit)."""
    stmt = select(Delivery).where(
        Delivery.wait_reason.in_([r.value for r in reasons]),
        Delivery.state.in_((DeliveryState.DEFERRED, DeliveryState.PENDING)),
    )
    if kind is not None:
        stmt = stmt.where(Delivery.channel_kind == kind)
    waiting = session.scalars(stmt.with_for_update(skip_locked=True)).all()
    now = utcnow()
    for d in waiting:
        d.next_attempt_at = now
    enqueue_after_commit(session, [(d.id, d.channel_kind) for d in waiting])
    return len(waiting)


# --- operator actions ------------------------------------------------------------------------


def retry_delivery(session: Session, delivery_id: int, *, actor: str) -> Delivery:
    """Start a failed, deferred or cancelled delivery again, with a new failure budget."""
    d = session.get(Delivery, delivery_id)
    if d is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    if d.state in (DeliveryState.RUNNING, DeliveryState.LIVE, DeliveryState.WITHDRAWN):
        raise Conflict(f"delivery {delivery_id} is {d.state.value}; nothing to retry")
    d.state = DeliveryState.PENDING
    d.next_attempt_at = utcnow()
    d.failing_since = None
    d.consecutive_failures = 0
    from publisher.services.items import audit

    audit(session, actor, "delivery.retry", f"delivery:{d.id}")
    enqueue_after_commit(session, [(d.id, d.channel_kind)])
    return d


def poke_delivery(session: Session, delivery_id: int) -> None:
    """Make a waiting delivery due now (e.g. WeChat said its publish job finished)."""
    d = session.get(Delivery, delivery_id)
    if d is not None and d.state in CLAIMABLE_STATES:
        d.next_attempt_at = utcnow()
        enqueue_after_commit(session, [(d.id, d.channel_kind)])


def preflight(pool: ChannelPool, pubs: dict[str, Publication]) -> list[Any]:
    """Every channel's objections to its publication, before anything is sent."""
    problems: list[Any] = []
    for kind, pub in pubs.items():
        try:
            channel = pool.get(kind)
        except ChannelDisabled:
            continue
        problems.extend(channel.preflight(pub))
    return problems


def with_website_estimate(pub: Publication, settings: Settings) -> Publication:
    """`pub` with a stand-in website URL of the right shape, for preflight length checks."""
    if pub.website_url:
        return pub
    base = (settings.website_api_base or "https://www.example.gov.cn").rstrip("/")
    return replace(pub, website_url=f"{base}/articles/{pub.external_id}.html")
