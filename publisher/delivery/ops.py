"""Operator actions on deliveries: retry, cancel, retry a channel's failures, make waiting
deliveries due (wake, poke, a finished WeChat job).

Each takes the caller's session, never commits, and hands what became due to the workers
after that commit (`enqueue_after_commit`)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.delivery.publication import check_kind
from publisher.dispatch import enqueue_after_commit
from publisher.errors import Conflict, NotFound
from publisher.i18n import t
from publisher.i18n.deliveries import channel_name, state_name
from publisher.models import (
    CLAIMABLE_STATES,
    Delivery,
    DeliveryState,
    WaitReason,
    utcnow,
)

log = logging.getLogger(__name__)


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
    for delivery in waiting:
        delivery.next_attempt_at = now
    enqueue_after_commit(session, [(delivery.id, delivery.channel_kind) for delivery in waiting])
    return len(waiting)


def retry_delivery(session: Session, delivery_id: int, *, actor: str) -> Delivery:
    """Start a failed, deferred or cancelled delivery again, with a new failure budget."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(
            f"delivery {delivery_id} does not exist", zh=t("refusal.no_delivery", id=delivery_id)
        )
    if delivery.state in (DeliveryState.RUNNING, DeliveryState.LIVE, DeliveryState.WITHDRAWN):
        raise Conflict(
            f"delivery {delivery_id} is {delivery.state.value}; nothing to retry",
            zh=t("refusal.nothing_to_retry", id=delivery_id, state=state_name(delivery.state)),
        )
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = utcnow()
    delivery.failing_since = None
    delivery.consecutive_failures = 0
    audit(session, actor, "delivery.retry", f"delivery:{delivery.id}")
    enqueue_after_commit(session, [(delivery.id, delivery.channel_kind)])
    return delivery


def poke_delivery(session: Session, delivery_id: int) -> None:
    """Make a waiting delivery due now (e.g. WeChat said its publish job finished)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is not None and delivery.state in CLAIMABLE_STATES:
        delivery.next_attempt_at = utcnow()
        enqueue_after_commit(session, [(delivery.id, delivery.channel_kind)])


# Not `confirming`: the channel has accepted the job and publishes it whatever we do here;
# it is retracted once live instead.
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
    left to stop. A withdrawal (the channel must show nothing) is never cancelled: that
    would leave a retracted item on the channel. It can be retried, or its channel paused.
    """
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(
            f"delivery {delivery_id} does not exist", zh=t("refusal.no_delivery", id=delivery_id)
        )
    if not delivery.desired_present:
        raise Conflict(
            f"delivery {delivery_id} withdraws the item from {delivery.channel_kind}: "
            "a withdrawal cannot be cancelled (retry it, or pause the channel) "
            "撤回不能取消，可重试或暂停该渠道",
            zh=t(
                "refusal.withdrawal_cancel",
                id=delivery_id,
                channel=channel_name(delivery.channel_kind),
            ),
        )
    if delivery.state not in CANCELLABLE:
        raise Conflict(
            f"delivery {delivery_id} is {delivery.state.value}; it cannot be cancelled",
            zh=t("refusal.cannot_cancel", id=delivery_id, state=state_name(delivery.state)),
        )
    delivery.state = DeliveryState.CANCELLED
    delivery.next_attempt_at = utcnow()
    delivery.explanation = f"cancelled by {actor}" + (f": {reason}" if reason else "")
    audit(session, actor, "delivery.cancel", f"delivery:{delivery.id}", reason=reason)
    return delivery


def poke_waiting_wechat_delivery(session: Session, publish_id: str) -> bool:
    """Make the WeChat delivery waiting on job `publish_id` due now; False if none waits."""
    delivery_id = delivery_for_wechat_publish(session, publish_id)
    if delivery_id is not None:
        poke_delivery(session, delivery_id)
    return delivery_id is not None


def delivery_for_wechat_publish(session: Session, publish_id: str) -> int | None:
    """The WeChat delivery waiting on freepublish job `publish_id`, if any.

    While a publish job runs, the delivery's remote id is the job's publish_id. Such a
    delivery is `confirming`; one waiting since before that state existed is `unknown`.
    """
    found: int | None = session.scalars(
        select(Delivery.id).where(
            Delivery.channel_kind == "wechat",
            Delivery.state.in_((DeliveryState.CONFIRMING, DeliveryState.UNKNOWN)),
            Delivery.remote_id == str(publish_id),
        )
    ).first()
    return found


def retry_failed(session: Session, kind: str, *, actor: str) -> int:
    """Start every failed delivery of a channel again, each with a new failure budget."""
    check_kind(kind)
    failed = session.scalars(
        select(Delivery).where(
            Delivery.channel_kind == kind, Delivery.state == DeliveryState.FAILED
        )
    ).all()
    now = utcnow()
    for delivery in failed:
        delivery.state = DeliveryState.PENDING
        delivery.next_attempt_at = now
        delivery.failing_since = None
        delivery.consecutive_failures = 0
    enqueue_after_commit(session, [(delivery.id, delivery.channel_kind) for delivery in failed])
    audit(session, actor, "channel.retry_failed", f"channel:{kind}", count=len(failed))
    return len(failed)
