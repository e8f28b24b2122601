"""An operator's word on a post the engine cannot settle by itself: adopt it, or mark it posted.

A delivery can stay `unknown` (or end `failed`) although its post is out there: Weibo calls
a repeated text a repeat (20019) yet its lookups cannot find the post (an old one scrolled off
the timeline, a lost id). Retrying would only be refused again, or post it twice. The operator
who finds the post on the channel says so:

- `adopt_post` verifies it first: the adapter looks the post up by the id the operator gives
  (`lookup(pub, Remote(remote_id))`) and the delivery takes the copy the channel shows, with
  that id. A channel that shows nothing under the id, or this item under another id, refuses
  (`Conflict`, saying what it found).
- `mark_posted` takes the operator's word when the channel cannot be asked (a required reason,
  audited), with the post's id and address if known. Without an id we can neither update nor
  delete that copy: an edit posts anew, a retraction must be done by hand.

Both record the delivery as live and audit who said so. `adopt_post`, like the engine and
the reconciler (and for the same reason: a channel call must not sit inside a transaction),
commits: one transaction reads, the lookup runs outside any, one transaction records.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Capability, Publication, Receipt, Remote
from channels.errors import ChannelDisabled, ChannelError
from publisher.audit import audit
from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.publication import ChannelPool, PlanReads
from publisher.dispatch import enqueue_after_commit
from publisher.errors import Conflict, NotFound
from publisher.i18n import t
from publisher.i18n.deliveries import channel_name, state_name
from publisher.models import Delivery, DeliveryState, Revision, utcnow

# A post can be adopted for a delivery whose outcome is unknown, or that failed (e.g. refused
# as a repeat of a post that is there); never under a worker's feet, nor for a withdrawal.
ADOPTABLE = (DeliveryState.UNKNOWN, DeliveryState.FAILED)


@dataclass(frozen=True)
class _Asked:
    kind: str
    pub: Publication
    seen: tuple[DeliveryState, int | None]


def adopt_post(
    database: Database,
    settings: Settings,
    pool: ChannelPool,
    delivery_id: int,
    remote_id: str,
    *,
    actor: str,
) -> None:
    """Verify on the channel that post `remote_id` is this delivery's, then record it live.

    Commits. Raises `NotFound`; `Conflict` when the delivery cannot adopt a post now, when the
    channel cannot be asked, shows nothing under `remote_id` or shows this item under another
    id, or when the delivery moved on during the lookup.
    """
    with database.session() as session:
        asked = _what_to_ask(session, settings, delivery_id)
    try:
        channel = pool.get(asked.kind)
        if Capability.LOOKUP not in channel.capabilities:
            raise Conflict(
                f"{asked.kind} cannot look its posts up: use mark-posted with a reason "
                "该渠道无法查询，请用 mark-posted 并写明理由",
                zh=t("refusal.cannot_lookup", channel=channel_name(asked.kind)),
            )
        receipt = channel.lookup(asked.pub, Remote(remote_id))
    except (ChannelError, ChannelDisabled) as exc:
        raise Conflict(
            f"{asked.kind} could not be asked about post {remote_id}: {exc}; try again later, "
            "or use mark-posted with a reason 暂无法向渠道核实",
            zh=t("refusal.lookup_failed", channel=channel_name(asked.kind), remote_id=remote_id),
        ) from exc
    if receipt is None:
        raise Conflict(
            f"{asked.kind} shows no post {remote_id} for this item 渠道上查无此条",
            zh=t("refusal.no_such_post", channel=channel_name(asked.kind), remote_id=remote_id),
        )
    if receipt.remote_id != remote_id:
        raise Conflict(
            f"{asked.kind} shows this item as post {receipt.remote_id}, not {remote_id} "
            "该编号不是本条信息在渠道上的编号",
            zh=t(
                "refusal.other_post",
                channel=channel_name(asked.kind),
                found=receipt.remote_id,
                remote_id=remote_id,
            ),
        )
    with database.session() as session:
        delivery = _locked(session, delivery_id, asked.seen)
        delivery.remote_state = dict(receipt.state)
        _record_live(
            session,
            delivery,
            remote_id,
            receipt.url,
            revision_id=_revision_shown(session, delivery, receipt),
            why=f"post {remote_id} adopted by {actor}",
        )
        audit(
            session,
            actor,
            "delivery.adopt",
            f"delivery:{delivery.id}",
            item_id=delivery.item_id,
            remote_id=remote_id,
            channel=delivery.channel_kind,
        )


def mark_posted(
    session: Session,
    delivery_id: int,
    *,
    reason: str,
    remote_id: str | None,
    url: str | None,
    actor: str,
) -> Delivery:
    """Record the delivery live on the operator's word (`reason` required, audited).

    Raises `NotFound`; `Conflict` when the delivery cannot be marked now."""
    delivery = session.get(Delivery, delivery_id, with_for_update=True)
    _check_adoptable(delivery, delivery_id)
    assert delivery is not None
    delivery.remote_state = {}
    # The operator's word covers the item as it stands: nothing is left to write.
    _record_live(
        session,
        delivery,
        remote_id,
        url,
        revision_id=delivery.desired_revision_id,
        why=f"marked posted by {actor}: {reason}",
    )
    audit(
        session,
        actor,
        "delivery.mark_posted",
        f"delivery:{delivery.id}",
        item_id=delivery.item_id,
        reason=reason,
        remote_id=remote_id,
        url=url,
        channel=delivery.channel_kind,
    )
    return delivery


def _what_to_ask(session: Session, settings: Settings, delivery_id: int) -> _Asked:
    delivery = session.get(Delivery, delivery_id)
    _check_adoptable(delivery, delivery_id)
    assert delivery is not None
    pub = PlanReads(session, settings, delivery).publication(_revision_sent(delivery))
    assert pub is not None  # a delivery that is to be present has a revision
    seen = (DeliveryState(delivery.state), delivery.desired_revision_id)
    return _Asked(delivery.channel_kind, pub, seen)


def _check_adoptable(delivery: Delivery | None, delivery_id: int) -> None:
    if delivery is None:
        raise NotFound(
            f"delivery {delivery_id} does not exist", zh=t("refusal.no_delivery", id=delivery_id)
        )
    if not delivery.desired_present:
        raise Conflict(
            f"delivery {delivery_id} withdraws the item: there is no post to adopt "
            "撤回中的投递不能认领",
            zh=t("refusal.adopt_withdrawal", id=delivery_id),
        )
    if delivery.state not in ADOPTABLE:
        raise Conflict(
            f"delivery {delivery_id} is {DeliveryState(delivery.state).value}; only an unknown "
            "or failed delivery takes a post from an operator",
            zh=t("refusal.adopt_state", id=delivery_id, state=state_name(delivery.state)),
        )


def _locked(session: Session, delivery_id: int, seen: tuple[DeliveryState, int | None]) -> Delivery:
    delivery = session.get(Delivery, delivery_id, with_for_update=True, populate_existing=True)
    assert delivery is not None
    if (DeliveryState(delivery.state), delivery.desired_revision_id) != seen:
        raise Conflict(
            f"delivery {delivery_id} moved on while the channel was asked "
            f"(now {DeliveryState(delivery.state).value}); look at it again",
            zh=t("refusal.adopt_moved_on", id=delivery_id, state=state_name(delivery.state)),
        )
    return delivery


def _revision_sent(delivery: Delivery) -> int | None:
    return delivery.attempted_revision_id or delivery.desired_revision_id


def _revision_shown(session: Session, delivery: Delivery, receipt: Receipt) -> int | None:
    """The revision the channel's copy shows: by its content hash when the channel gives one,
    else the one last sent (the post the operator found is the one the write made)."""
    if not receipt.content_hash:
        return _revision_sent(delivery)
    found: int | None = session.scalars(
        select(Revision.id).where(
            Revision.item_id == delivery.item_id, Revision.content_hash == receipt.content_hash
        )
    ).first()
    return found


def _record_live(
    session: Session,
    delivery: Delivery,
    remote_id: str | None,
    url: str | None,
    *,
    revision_id: int | None,
    why: str,
) -> None:
    """Post `remote_id` is the delivery's copy: live when it shows the desired revision, else
    handed to the engine (due now), which brings it up to date."""
    now = utcnow()
    delivery.forget_attempts()
    delivery.remote_id, delivery.remote_url = remote_id, url
    delivery.applied_revision_id = revision_id
    delivery.failing_since, delivery.consecutive_failures = None, 0
    delivery.last_error_kind = delivery.last_error_code = delivery.last_error_message = None
    delivery.lease_owner = delivery.lease_expires_at = None
    delivery.wait_reason = None
    delivery.next_attempt_at = now
    if revision_id is not None and revision_id == delivery.desired_revision_id:
        delivery.state, delivery.live_at = DeliveryState.LIVE, delivery.live_at or now
        delivery.explanation = why
        return
    delivery.state = DeliveryState.PENDING
    delivery.explanation = f"{why}; it shows an older revision: updating it"
    enqueue_after_commit(session, [(delivery.id, delivery.channel_kind)])
