"""Reconciliation: find drift between the store and the channels, record it, repair it.

A live delivery says "the channel shows revision R"; a withdrawn one says "the channel shows
nothing". People and platforms change channels behind our back (a post deleted by hand on
Weibo, a page edited in the CMS), so a periodic check asks each channel (`lookup`) whether
that still holds. What it finds is a `Drift` row:

    missing      a live delivery's copy is gone             repair: create it again
    changed      the channel reports another content hash   repair: write the revision again
    reappeared   a withdrawn delivery's copy is back        repair: delete it again

Repairs never write to a channel here. Under the policy "repair" the delivery is pointed back
at the engine (state `pending`, due now, sent after commit), which does the write with its
claims, attempt rows, retries and pacing; under "report" the drift is recorded only, for an
operator to repair (`repair_drift`). A repair that does not hold (the drift is found again
after the engine settled it) is not repeated: it is left open as `reported`, so a platform
that keeps removing a post is not fed it again every hour.

A channel that fails during the check (busy, timeouts) shows no drift: the error is counted
and the check moves on (or stops, for refused credentials). The lookups spend at most
`reconcile_budget_share` of each daily budget (`channels.budgets.spending_for`), so that a
check never eats the quota publishing needs; a lookup refused for a rate limit or a spent
budget is no verdict either: the run stops and reports how many it left `unchecked`, and why.
A paused channel, one needing re-authorisation and one whose circuit breaker is open are
skipped. Each channel has its policy (`Settings.reconcile_policy_for`): Weibo's is "report" by
default, since a post its lookups cannot find may still be there.

Like the engine, and for the same reason (a remote call must not sit inside a transaction),
`reconcile_channel` commits: one short transaction picks the deliveries, then one per delivery
records its lookup. The other functions here never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.base import Capability, Publication, Receipt, Remote
from channels.budgets import spending_for
from channels.errors import AuthExpired, ChannelDisabled, ChannelError, RateLimited
from channels.registry import KINDS
from publisher.audit import audit
from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.publication import (
    ChannelPool,
    PlanReads,
    with_website_estimate,
)
from publisher.dispatch import enqueue_after_commit
from publisher.errors import Conflict, FieldProblem, InvalidInput, NotFound
from publisher.i18n import t
from publisher.i18n.deliveries import beijing, state_name
from publisher.models import Channel as ChannelRow
from publisher.models import (
    Delivery,
    DeliveryState,
    Drift,
    DriftCheck,
    DriftKind,
    DriftResolution,
    Item,
    utcnow,
)

log = logging.getLogger(__name__)

POLICIES = ("repair", "report")
ACTOR = "reconcile"
# After this many failed lookups in a row the channel is failing: stop and try next run.
MAX_CONSECUTIVE_ERRORS = 5
MAX_ERROR_SAMPLES = 5

WHAT = {
    DriftKind.MISSING: "the channel no longer shows this item",
    DriftKind.CHANGED: "the channel shows other content than the store's revision",
    DriftKind.REAPPEARED: "the channel shows this withdrawn item again",
}


def check_policy(policy: str) -> str:
    """`policy` if known. Raises `InvalidInput`."""
    if policy not in POLICIES:
        raise InvalidInput(
            [
                FieldProblem(
                    "policy",
                    "known",
                    f"unknown policy {policy!r}; known: {', '.join(POLICIES)}",
                    values={"value": policy, "choices": list(POLICIES)},
                )
            ]
        )
    return policy


# --- what a run reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftFound:
    drift_id: int
    delivery_id: int
    item_id: int
    kind: str
    action: str  # "repaired" | "reported"
    seen_before: bool  # the drift was already open: counted again, not duplicated


@dataclass
class ReconcileReport:
    """One channel's check: how many deliveries were looked up and what came of it.

    `checked` = `in_line` + len(`drift`) + `errors` + `changed_meanwhile`. `skipped` says why
    nothing was checked; `stopped` why the check ended early; `unchecked` counts the
    deliveries a rate limit or a spent budget left for the next run.
    """

    channel: str
    policy: str
    checked: int = 0
    in_line: int = 0
    drift: list[DriftFound] = field(default_factory=list)
    repaired: int = 0
    resolved: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    changed_meanwhile: int = 0  # the engine moved the delivery during the lookup: not judged
    skipped: str | None = None
    stopped: str | None = None
    unchecked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- what one delivery should look like, and what the channel says -----------------------------


@dataclass(frozen=True)
class _Probe:
    delivery_id: int
    item_id: int
    present: bool  # True: the channel must show `expected_hash`; False: nothing
    seen: tuple[Any, ...]  # the delivery's state when picked; compared before recording
    pub: Publication
    remote: Remote | None
    expected_hash: str | None


@dataclass(frozen=True)
class _Finding:
    kind: DriftKind
    details: dict[str, Any]


def _seen(delivery: Delivery) -> tuple[Any, ...]:
    return (
        DeliveryState(delivery.state),
        delivery.desired_present,
        delivery.applied_revision_id,
        delivery.remote_id,
    )


def _checkable() -> Any:
    return or_(
        (Delivery.state == DeliveryState.LIVE) & Delivery.desired_present.is_(True),
        (Delivery.state == DeliveryState.WITHDRAWN) & Delivery.desired_present.is_(False),
    )


def _probes(
    session: Session, settings: Settings, kind: str, *, limit: int, item_id: int | None
) -> list[_Probe]:
    """Up to `limit` settled deliveries of `kind`, least recently checked (never: first)."""
    stmt = (
        select(Delivery)
        .outerjoin(DriftCheck, DriftCheck.delivery_id == Delivery.id)
        .where(Delivery.channel_kind == kind, _checkable())
        .order_by(DriftCheck.checked_at.asc().nulls_first(), Delivery.id)
        .limit(limit)
    )
    if item_id is not None:
        stmt = stmt.where(Delivery.item_id == item_id)
    probes = []
    for delivery in session.scalars(stmt):
        revision_id = delivery.applied_revision_id or delivery.desired_revision_id
        if revision_id is None:
            continue
        # What the engine would send: the item, the revision and the website page's URL
        # (the website's own, else the website delivery's), read as the engine reads them.
        pub = PlanReads(session, settings, delivery).publication(revision_id)
        assert pub is not None
        if not delivery.desired_present:  # the website page is gone too: its URL's shape
            pub = with_website_estimate(pub, settings)
        remote = (
            Remote(delivery.remote_id, delivery.remote_url, dict(delivery.remote_state or {}))
            if delivery.remote_id
            else None
        )
        probes.append(
            _Probe(
                delivery_id=delivery.id,
                item_id=delivery.item_id,
                present=delivery.desired_present,
                seen=_seen(delivery),
                pub=pub,
                remote=remote,
                expected_hash=pub.content_hash,
            )
        )
    return probes


def _classify(probe: _Probe, receipt: Receipt | None) -> _Finding | None:
    """The drift `receipt` shows for `probe`, or None when the channel is in line."""
    if receipt is not None and not receipt.complete:
        return None  # the channel is still finishing it (WeChat's publish job): no verdict
    found = (
        {}
        if receipt is None
        else {
            "remote_id": receipt.remote_id,
            "url": receipt.url,
            "remote_state": dict(receipt.state),
            "content_hash": receipt.content_hash,
        }
    )
    recorded = {
        "revision_id": probe.pub.revision_id,
        "remote_id": probe.remote.remote_id if probe.remote else None,
        "url": probe.remote.url if probe.remote else None,
    }
    if not probe.present:
        if receipt is None:
            return None
        return _Finding(DriftKind.REAPPEARED, {"recorded": recorded, "channel": found})
    if receipt is None:
        return _Finding(DriftKind.MISSING, {"recorded": recorded, "channel": None})
    if receipt.content_hash and probe.expected_hash and receipt.content_hash != probe.expected_hash:
        recorded["content_hash"] = probe.expected_hash
        return _Finding(DriftKind.CHANGED, {"recorded": recorded, "channel": found})
    return None


# --- the check ---------------------------------------------------------------------------------


def reconcile_channel(
    database: Database,
    settings: Settings,
    pool: ChannelPool,
    kind: str,
    *,
    limit: int,
    now: datetime,
    policy: str | None = None,
    item_id: int | None = None,
    actor: str = ACTOR,
) -> ReconcileReport:
    """Look up `limit` live and withdrawn deliveries of `kind` (stalest first, or only those
    of `item_id`) on the channel; record drift, and repair it under the policy "repair".

    Commits (one transaction to pick, one per delivery after its lookup). Raises
    `InvalidInput` for an unknown policy; channel errors are counted in the report, never
    raised.
    """
    report = ReconcileReport(kind, check_policy(policy or settings.reconcile_policy_for(kind)))
    try:  # before any session: on SQLite, building an adapter may read the shared store
        channel = pool.get(kind)
    except ChannelDisabled as exc:
        report.skipped = f"disabled: {exc}"
        return report
    if Capability.LOOKUP not in channel.capabilities:
        report.skipped = f"{kind} cannot look up its posts"
        return report
    with database.session() as session:
        report.skipped = _held(session, kind, now)
        if report.skipped:
            return report
        probes = _probes(session, settings, kind, limit=limit, item_id=item_id)
    consecutive_errors = 0
    for position, probe in enumerate(probes):
        try:
            with spending_for("reconcile", settings.reconcile_budget_share):
                receipt = channel.lookup(probe.pub, probe.remote)
        except RateLimited as exc:  # no verdict: this one and the rest wait for the next run
            report.unchecked = len(probes) - position
            report.stopped = f"{report.unchecked} not checked: {exc}"
            log.warning("reconcile %s: %s", kind, report.stopped)
            break
        except ChannelError as exc:
            report.checked += 1
            _count_error(report, probe, str(exc))
            if isinstance(exc, AuthExpired):
                report.stopped = str(exc)
                break
            consecutive_errors += 1
        except Exception as exc:  # a bug in an adapter: keep checking, like the engine
            report.checked += 1
            log.exception("reconcile: %s lookup crashed on delivery %s", kind, probe.delivery_id)
            _count_error(report, probe, f"internal error in the {kind} adapter: {exc!r}")
            consecutive_errors += 1
        else:
            report.checked += 1
            consecutive_errors = 0
            try:
                with database.session() as session:
                    _record(session, probe, _classify(probe, receipt), report, now, actor)
            except IntegrityError:  # a concurrent check recorded it first
                report.changed_meanwhile += 1
            continue
        with database.session() as session:
            _mark_checked(session, probe.delivery_id, now, "error")
        if consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            report.stopped = f"{consecutive_errors} lookups failed in a row; the channel is failing"
            break
    if report.drift or report.errors:
        log.info("reconcile %s: %s", kind, _summary(report))
    return report


def _held(session: Session, kind: str, now: datetime) -> str | None:
    row = session.get(ChannelRow, kind)
    if row is None:
        return None
    if row.paused:
        return f"paused: {row.paused_reason or ''}".rstrip(": ")
    if row.needs_reauth:
        return f"needs re-authorisation: {row.reauth_reason or ''}".rstrip(": ")
    breaker_open_until = getattr(row, "breaker_open_until", None)
    if breaker_open_until is not None and breaker_open_until > now:
        return f"circuit breaker open until {breaker_open_until.isoformat(timespec='seconds')}"
    return None


def _count_error(report: ReconcileReport, probe: _Probe, message: str) -> None:
    report.errors += 1
    if len(report.error_samples) < MAX_ERROR_SAMPLES:
        report.error_samples.append(f"delivery {probe.delivery_id}: {message}")


def _summary(report: ReconcileReport) -> str:
    return (
        f"checked {report.checked}, in line {report.in_line}, drift {len(report.drift)}, "
        f"repaired {report.repaired}, resolved {report.resolved}, errors {report.errors}"
    )


def _mark_checked(session: Session, delivery_id: int, now: datetime, outcome: str) -> None:
    check = session.get(DriftCheck, delivery_id)
    if check is None:
        session.add(DriftCheck(delivery_id=delivery_id, checked_at=now, outcome=outcome))
    else:
        check.checked_at, check.outcome = now, outcome


def _open_drift(session: Session, delivery_id: int) -> Drift | None:
    return session.scalars(
        select(Drift).where(Drift.delivery_id == delivery_id, Drift.resolved_at.is_(None))
    ).first()


def _close(drift: Drift, now: datetime, why: str) -> None:
    drift.resolved_at = now
    if drift.resolution == DriftResolution.REPORTED:
        drift.resolution = DriftResolution.GONE
    drift.details = {**drift.details, "closed": why}


def _record(
    session: Session,
    probe: _Probe,
    finding: _Finding | None,
    report: ReconcileReport,
    now: datetime,
    actor: str,
) -> None:
    """Record one lookup's verdict; open, count again, close or repair the delivery's drift."""
    delivery = session.get(Delivery, probe.delivery_id, with_for_update=True)
    if delivery is None or _seen(delivery) != probe.seen:
        _mark_checked(session, probe.delivery_id, now, "moved")
        report.changed_meanwhile += 1
        return
    _mark_checked(session, delivery.id, now, "in_line" if finding is None else "drift")
    drift = _open_drift(session, delivery.id)
    if finding is None:
        report.in_line += 1
        if drift is not None:
            _close(drift, now, "a later check found the channel in line")
            report.resolved += 1
        return
    if drift is not None and drift.kind != finding.kind:
        _close(drift, now, f"superseded: the channel now shows {finding.kind.value} drift")
        session.flush()  # at most one open drift per delivery (a partial unique index)
        report.resolved += 1
        drift = None
    seen_before = drift is not None
    if drift is None:
        drift = Drift(
            delivery_id=delivery.id,
            item_id=delivery.item_id,
            channel_kind=delivery.channel_kind,
            kind=finding.kind,
            detected_at=now,
            last_seen_at=now,
            times_seen=1,
            details={"what": WHAT[finding.kind], **finding.details},
            resolution=DriftResolution.REPORTED,
        )
        session.add(drift)
        session.flush()
        repair = report.policy == "repair"
    else:
        drift.last_seen_at = now
        drift.times_seen += 1
        drift.details = {**drift.details, **finding.details}
        if drift.resolution == DriftResolution.REPAIRED:
            # The engine settled our repair and the drift is back: do not loop on it.
            drift.resolution = DriftResolution.REPORTED
            drift.details = {
                **drift.details,
                "note": "found again after a repair; left for an operator",
            }
            repair = False
        else:
            repair = report.policy == "repair"
    if repair:
        _repair(session, delivery, drift, actor=actor, now=now)
        report.repaired += 1
    report.drift.append(
        DriftFound(
            drift_id=drift.id,
            delivery_id=delivery.id,
            item_id=delivery.item_id,
            kind=drift.kind.value,
            action=drift.resolution.value,
            seen_before=seen_before,
        )
    )


def _repair(
    session: Session, delivery: Delivery, drift: Drift, *, actor: str, now: datetime
) -> None:
    """Point `delivery` back at the engine so that it closes the gap `drift` describes."""
    if drift.kind == DriftKind.MISSING:  # nothing of ours out there: the engine creates anew
        delivery.forget_remote()
    elif drift.kind == DriftKind.CHANGED:  # applied ≠ desired: the engine writes it again
        delivery.applied_revision_id = None
    else:  # reappeared: record the copy found, so that the engine deletes it
        found = drift.details.get("channel") or {}
        delivery.remote_id = str(found.get("remote_id") or "") or None
        delivery.remote_url = found.get("url")
        # Merged, not replaced: what else the delivery recorded (a digest's mass-sent copies,
        # the thumbs it holds) is deleted with the copy found.
        delivery.remote_state = {
            **(delivery.remote_state or {}),
            **(found.get("remote_state") or {}),
        }
        delivery.forget_attempts()
        delivery.applied_revision_id = None
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = now
    delivery.failing_since = None
    delivery.consecutive_failures = 0
    delivery.explanation = f"drift {drift.id}: {WHAT[drift.kind]}; repairing"
    drift.resolution = DriftResolution.REPAIRED
    audit(
        session,
        actor,
        "drift.repair",
        f"delivery:{delivery.id}",
        drift=drift.id,
        kind=drift.kind.value,
        item=delivery.item_id,
        channel=delivery.channel_kind,
    )
    enqueue_after_commit(session, [(delivery.id, delivery.channel_kind)])


# --- entry points: beat, operators -------------------------------------------------------------


def scheduled_reconcile(
    database: Database, settings: Settings, pool: ChannelPool, kind: str
) -> ReconcileReport:
    """The beat job's body for one channel: the stalest `reconcile_batch` deliveries under
    `reconcile_policy`."""
    return reconcile_channel(
        database, settings, pool, kind, limit=settings.reconcile_batch, now=utcnow()
    )


def check_now(
    database: Database,
    settings: Settings,
    pool: ChannelPool,
    *,
    channel: str | None = None,
    item_id: int | None = None,
    policy: str | None = None,
    actor: str = ACTOR,
) -> list[ReconcileReport]:
    """An operator's check of one channel or all, optionally of one item only.

    Raises `InvalidInput` for an unknown channel or policy, `NotFound` for an unknown item.
    """
    if channel is not None and channel not in KINDS:
        raise InvalidInput(
            [
                FieldProblem(
                    "channel",
                    "known",
                    f"unknown channel {channel!r}; known: {KINDS}",
                    values={"value": channel, "choices": list(KINDS)},
                )
            ]
        )
    if policy is not None:
        check_policy(policy)
    if item_id is not None:
        with database.session() as session:
            if session.get(Item, item_id) is None:
                raise NotFound(
                    f"item {item_id} does not exist", zh=t("refusal.no_item", id=item_id)
                )
    kinds: Iterable[str] = [channel] if channel else KINDS
    return [
        reconcile_channel(
            database,
            settings,
            pool,
            kind,
            limit=settings.reconcile_batch,
            now=utcnow(),
            policy=policy,
            item_id=item_id,
            actor=actor,
        )
        for kind in kinds
    ]


def repair_drift(session: Session, drift_id: int, *, actor: str) -> Drift:
    """Repair an open drift now (one recorded under the policy "report", or one whose repair
    did not hold). Raises `NotFound`; `Conflict` when it is closed or the delivery has moved
    on since (the engine is already working on it, or it was edited or retracted)."""
    drift = session.get(Drift, drift_id)
    if drift is None:
        raise NotFound(f"drift {drift_id} does not exist", zh=t("refusal.no_drift", id=drift_id))
    if drift.resolved_at is not None:
        raise Conflict(
            f"drift {drift_id} was resolved at {drift.resolved_at.isoformat()}",
            zh=t("refusal.drift_resolved", id=drift_id, at=beijing(drift.resolved_at)),
        )
    delivery = session.get(Delivery, drift.delivery_id, with_for_update=True)
    assert delivery is not None
    expected = DeliveryState.WITHDRAWN if drift.kind == DriftKind.REAPPEARED else DeliveryState.LIVE
    if delivery.state != expected or delivery.desired_present != (expected == DeliveryState.LIVE):
        raise Conflict(
            f"delivery {delivery.id} is {DeliveryState(delivery.state).value} now; "
            "the next check will judge it",
            zh=t("refusal.drift_moved_on", id=delivery.id, state=state_name(delivery.state)),
        )
    _repair(session, delivery, drift, actor=actor, now=utcnow())
    return drift
