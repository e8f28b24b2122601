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
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from channels.base import Channel, Publication, Receipt, Remote
from channels.errors import (
    AuthExpired,
    ChannelDisabled,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    RateLimited,
    Retryable,
)
from channels.registry import channel_class
from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.attempts import abandon_unfinished, finish_attempt, start_attempt
from publisher.delivery.claims import backoff_seconds, claim, lease_kept
from publisher.delivery.gate import (
    breaker_failure,
    breaker_success,
    channel_gate,
    hold,
    needs_reauth,
)
from publisher.delivery.publication import ChannelPool, PlanReads
from publisher.dispatch import enqueue_after_commit
from publisher.models import (
    WEBSITE_WAIT_SECONDS,
    AttemptOutcome,
    Delivery,
    DeliveryState,
    Revision,
    WaitReason,
    utcnow,
)

log = logging.getLogger(__name__)

Action = Literal["create", "update", "delete", "lookup"]


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

    def outdated(self, delivery: Delivery) -> bool:
        return (delivery.desired_revision_id, delivery.desired_present) != (
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
            delivery = claim(session, delivery_id, worker, self.settings.lease_seconds, utcnow())
            if delivery is None:
                return result
            result.claimed = True
            abandon_unfinished(session, delivery)
            step = self._next_step(session, delivery, worker, result)
        while step is not None:
            plan, attempt, channel = step
            result.actions.append(plan.action)
            started = time.monotonic()
            try:
                with lease_kept(self.database, self.settings.lease_seconds, delivery_id, worker):
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
                delivery = self._locked(session, delivery_id, worker)
                if delivery is None:  # the new owner looks the channel up before it writes
                    finish_attempt(session, attempt, AttemptOutcome.ABANDONED, started)
                    result.state = DeliveryState.RUNNING
                    return result
                stopped = self._record_success(session, delivery, attempt, plan, receipt, started)
                if stopped is not None:
                    result.state = stopped
                    return result
                if len(result.actions) >= max_steps:  # hand back to the queue
                    self._settle(
                        session, delivery, Settle(DeliveryState.PENDING, next_attempt_in=0)
                    )
                    result.state = delivery.state
                    return result
                step = self._next_step(session, delivery, worker, result)
        return result

    def _next_step(
        self, session: Session, delivery: Delivery, worker: str, result: SyncResult
    ) -> tuple[Step, int, Channel] | None:
        """Plan for `delivery`, row-locked and leased by `worker`: settle (None) or start an attempt
        for the next call."""
        plan = self._plan(session, delivery, worker)
        if isinstance(plan, Settle):
            self._settle(session, delivery, plan)
            result.state = delivery.state
            return None
        delivery.lease_expires_at = utcnow() + timedelta(seconds=self.settings.lease_seconds)
        attempt = start_attempt(session, delivery, plan.action, plan.pub, worker)
        return plan, attempt, self.pool.get(delivery.channel_kind)

    def _locked(self, session: Session, delivery_id: int, worker: str) -> Delivery | None:
        """The delivery, row-locked, if `worker` still holds its lease; else None."""
        delivery = session.get(
            Delivery, delivery_id, with_for_update={"key_share": True}, populate_existing=True
        )
        if (
            delivery is None
            or delivery.state != DeliveryState.RUNNING
            or delivery.lease_owner != worker
        ):
            log.warning("delivery %s: lease lost by %s; stopping", delivery_id, worker)
            return None
        return delivery

    # planning

    def _plan(self, session: Session, delivery: Delivery, worker: str) -> Step | Settle:
        """The one action that closes the gap, or how to settle. What a settled delivery needs
        (nothing more to do) is decided from the row alone; the item, its revision, the
        website's URL and the channel's gate are read only when a call is due."""
        reads = PlanReads(session, self.settings, delivery)
        decision = self._decide(delivery, reads)
        if isinstance(decision, Settle) and decision.state in (
            DeliveryState.LIVE,
            DeliveryState.WITHDRAWN,
        ):
            return decision
        gate = channel_gate(session, delivery.channel_kind)
        held = hold(
            session,
            self.settings,
            gate,
            kind=delivery.channel_kind,
            worker=worker,
            publishing_held=delivery.desired_present and not reads.item().urgent,
        )
        if held is not None:
            return Settle(
                DeliveryState.DEFERRED,
                held.explanation,
                next_attempt_in=held.next_attempt_in,
                until=held.until,
                wait=held.wait,
            )
        try:
            self.pool.get(delivery.channel_kind)
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

    def _decide(self, delivery: Delivery, reads: PlanReads) -> Step | Settle:
        remote = (
            Remote(delivery.remote_id or "", delivery.remote_url, dict(delivery.remote_state or {}))
            if delivery.remote_id
            or delivery.incomplete
            or (delivery.uncertain and delivery.remote_state)
            else None
        )
        website_url, pub_for = reads.website_url, reads.publication

        if delivery.uncertain or delivery.incomplete:
            attempted = delivery.attempted_revision_id or delivery.desired_revision_id
            looked_for = pub_for(attempted)
            if looked_for is not None and delivery.attempted_website_url:
                # Search for what was sent, with the link it carried: once the item is
                # retracted the website page is gone, but the post may still link to it.
                looked_for = replace(looked_for, website_url=delivery.attempted_website_url)
            return Step(
                "lookup", looked_for, remote, delivery.desired_revision_id, delivery.desired_present
            )
        if not delivery.desired_present:
            if remote is None:
                return Settle(DeliveryState.WITHDRAWN)
            return Step(
                "delete",
                pub_for(delivery.applied_revision_id),
                remote,
                delivery.desired_revision_id,
                False,
            )
        if remote is not None and delivery.applied_revision_id == delivery.desired_revision_id:
            return Settle(DeliveryState.LIVE)
        if channel_class(delivery.channel_kind).needs_website_url and not website_url():
            # Parked until the website page exists: its going live wakes this delivery.
            return Settle(
                DeliveryState.DEFERRED,
                "waiting for the website page to exist",
                next_attempt_in=WEBSITE_WAIT_SECONDS,
                wait=WaitReason.WEBSITE,
            )
        pub = pub_for(delivery.desired_revision_id)
        action: Action = "create" if remote is None else "update"
        return Step(action, pub, remote, delivery.desired_revision_id, True)

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

    def _record_success(
        self,
        session: Session,
        delivery: Delivery,
        attempt_id: int,
        step: Step,
        receipt: Receipt | None,
        started: float,
    ) -> DeliveryState | None:
        """Apply the channel's answer to `delivery` (row-locked, still ours). Returns a state when
        this worker must stop."""
        finish_attempt(
            session, attempt_id, AttemptOutcome.OK, started, note=receipt.note if receipt else None
        )
        if not step.channel_healthy:
            breaker_success(session, delivery.channel_kind)
        delivery.wait_reason = None
        delivery.in_flight = None
        delivery.uncertain = False
        if step.action != "lookup" or receipt is not None:
            # A lookup that finds nothing proves nothing went out: the write that made us look
            # still counts against the failure budget, so a create that keeps ending uncertain
            # cannot loop forever.
            delivery.consecutive_failures = 0
            delivery.failing_since = None
            delivery.last_error_kind = delivery.last_error_code = delivery.last_error_message = None
            delivery.explanation = None
        if step.action == "delete":
            if step.remote is not None and (delivery.remote_state or {}) != step.remote.state:
                # Something was recorded on the copy during the call (WeChat's digest, a
                # pushed copy): delete again with it; what is already gone is no error.
                return None
            delivery.forget_remote()
            return None
        if receipt is None:  # a lookup that found nothing
            delivery.remote_id = delivery.remote_url = None
            delivery.applied_revision_id = None
            delivery.incomplete = False
            return None
        state = {**(delivery.remote_state or {}), **receipt.state}
        delivery.remote_id = receipt.remote_id
        delivery.remote_url = receipt.url or delivery.remote_url
        if not receipt.complete and step.outdated(delivery):
            # The item changed while the channel was working on the old revision: keep what
            # the channel told us and plan again (the next step looks the job up first).
            delivery.incomplete = True
            delivery.remote_state = state
            return None
        if not receipt.complete:
            delivery.incomplete = True
            delivery.remote_state = state
            delivery.state = DeliveryState.CONFIRMING
            delivery.explanation = "accepted by the channel; waiting for it to finish publishing"
            delivery.next_attempt_at = utcnow() + timedelta(seconds=receipt.poll_after or 60)
            delivery.lease_owner = delivery.lease_expires_at = None
            return delivery.state
        delivery.incomplete = False
        delivery.applied_revision_id = self._revision_for(session, delivery, step, receipt)
        delivery.remote_state = state
        return None

    def _revision_for(
        self, session: Session, delivery: Delivery, step: Step, receipt: Receipt
    ) -> int | None:
        if (
            receipt.content_hash
            and step.pub is not None
            and receipt.content_hash == step.pub.content_hash
            and step.pub.revision_id == delivery.desired_revision_id
        ):
            return delivery.desired_revision_id  # the newest revision, as sent: nothing to search
        if receipt.content_hash:
            found = session.scalars(
                select(Revision.id)
                .where(
                    Revision.item_id == delivery.item_id,
                    Revision.content_hash == receipt.content_hash,
                )
                .order_by(Revision.number.desc())
            ).first()
            if found is not None:
                return found
        if step.action == "lookup":
            # A copy was found but the channel cannot tell which revision it shows (Weibo's
            # post found by its id or link, not its text): the next step brings it up to date.
            return None
        return delivery.attempted_revision_id or delivery.desired_revision_id

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
        delivery = self._locked(session, delivery_id, worker)
        if delivery is None:  # another worker owns the delivery now; only the attempt is ours
            finish_attempt(session, attempt_id, AttemptOutcome.ABANDONED, started, exc)
            return DeliveryState.RUNNING
        now = utcnow()
        delivery.in_flight = None
        if step.action == "lookup" and isinstance(exc, Permanent):
            # The channel refused the job we were waiting on (e.g. WeChat did not publish
            # it): nothing is out there, so a retry or an edit starts over with a new write.
            delivery.incomplete = delivery.uncertain = False
            delivery.remote_state = channel_class(delivery.channel_kind).state_without_refused_job(
                delivery.remote_state or {}
            )
            if not delivery.applied_revision_id:
                delivery.remote_id = delivery.remote_url = None
        delivery.wait_reason = None
        delivery.last_error_kind, delivery.last_error_code = exc.kind, exc.code
        delivery.last_error_message, delivery.explanation = exc.message, exc.explanation
        delivery.lease_owner = delivery.lease_expires_at = None
        budget = timedelta(seconds=self.settings.failure_budget_seconds)
        if isinstance(exc, OutcomeUnknown):
            outcome, delivery.state = AttemptOutcome.UNKNOWN, DeliveryState.UNKNOWN
            delivery.uncertain = True
            if exc.state:  # kept for the lookups to come (Weibo: the unanswered shares)
                delivery.remote_state = {**(delivery.remote_state or {}), **exc.state}
            delivery.failing_since = delivery.failing_since or now
            delivery.next_attempt_at = now + timedelta(seconds=self._backoff(delivery, now))
            if now - delivery.failing_since > budget:  # `uncertain` stays: a retry looks up first
                outcome, delivery.state = AttemptOutcome.FAILED, DeliveryState.FAILED
                delivery.explanation = f"{exc.explanation}; still uncertain after {budget}, gave up"
        elif isinstance(exc, RateLimited):
            outcome, delivery.state = AttemptOutcome.DEFERRED, DeliveryState.DEFERRED
            delivery.wait_reason = WaitReason.RATE_LIMIT
            delivery.next_attempt_at = max(exc.until, now)
            delivery.explanation = f"{exc.explanation}; waits until {exc.until.isoformat()}"
        elif isinstance(exc, AuthExpired):
            outcome, delivery.state = AttemptOutcome.DEFERRED, DeliveryState.DEFERRED
            delivery.wait_reason = WaitReason.REAUTH
            needs_reauth(session, delivery.channel_kind, str(exc))
            delivery.next_attempt_at = now + timedelta(hours=1)
        elif isinstance(exc, Permanent):
            outcome, delivery.state = AttemptOutcome.FAILED, DeliveryState.FAILED
        else:
            delay = (exc.retry_after if isinstance(exc, Retryable) else None) or self._backoff(
                delivery, now
            )
            delivery.failing_since = delivery.failing_since or now
            if now - delivery.failing_since > budget:
                outcome, delivery.state = AttemptOutcome.FAILED, DeliveryState.FAILED
                delivery.explanation = f"{exc.explanation}; still failing after {budget}, gave up"
            else:
                outcome, delivery.state = AttemptOutcome.RETRY, DeliveryState.RETRYING
                delivery.next_attempt_at = now + timedelta(seconds=delay)
        # The channel, not the content, failed; a lookup that answers "not found (yet)"
        # (OutcomeUnknown) is the channel working, and must not hold the channel's other work.
        looked_up = step.action == "lookup" and isinstance(exc, OutcomeUnknown)
        if isinstance(exc, Retryable | OutcomeUnknown) and not looked_up:
            breaker_failure(session, self.settings, delivery.channel_kind, now)
        finish_attempt(session, attempt_id, outcome, started, exc)
        if step.outdated(delivery) and delivery.state in (
            DeliveryState.FAILED,
            DeliveryState.RETRYING,
        ):
            # The editor changed the item during the call (perhaps fixing what the channel
            # refused): the failure was about a revision nobody wants any more.
            delivery.state, delivery.next_attempt_at = DeliveryState.PENDING, now
            delivery.failing_since, delivery.consecutive_failures = None, 0
            enqueue_after_commit(session, [(delivery.id, delivery.channel_kind)])
            return delivery.state
        if delivery.state in (
            DeliveryState.RETRYING,
            DeliveryState.UNKNOWN,
            DeliveryState.DEFERRED,
        ):
            delay = (delivery.next_attempt_at - now).total_seconds()
            if delay < 3600:  # longer waits are left to the sweeper
                enqueue_after_commit(
                    session, [(delivery.id, delivery.channel_kind)], countdown=delay
                )
        return delivery.state

    def _backoff(self, delivery: Delivery, now: datetime) -> float:
        delivery.consecutive_failures += 1
        return backoff_seconds(
            delivery.consecutive_failures,
            self.settings.backoff_base_seconds,
            self.settings.backoff_cap_seconds,
        )

    def _settle(self, session: Session, delivery: Delivery, plan: Settle) -> None:
        now = utcnow()
        delivery.state = plan.state
        delivery.lease_owner = delivery.lease_expires_at = None
        if plan.explanation is not None or plan.state in (
            DeliveryState.LIVE,
            DeliveryState.WITHDRAWN,
        ):
            delivery.explanation = plan.explanation
        if plan.next_attempt_in is not None:
            delivery.next_attempt_at = now + timedelta(seconds=plan.next_attempt_in)
        if plan.until is not None:
            delivery.next_attempt_at = plan.until
        delivery.wait_reason = plan.wait
        if plan.state == DeliveryState.LIVE:
            delivery.live_at = delivery.live_at or now
            delivery.last_error_kind = delivery.last_error_code = delivery.last_error_message = None
            if delivery.channel_kind == "website":
                self._wake_dependents(session, delivery)
        if plan.state == DeliveryState.WITHDRAWN:
            delivery.live_at = None
        if plan.state == DeliveryState.PENDING and plan.next_attempt_in == 0:
            enqueue_after_commit(session, [(delivery.id, delivery.channel_kind)])

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
