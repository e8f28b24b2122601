"""Which deliveries are due, taking one for a worker, and the sweeper's query.

A worker takes a delivery with a conditional UPDATE and a lease (`claim`), so that a duplicate
or stale message is a no-op; `due_deliveries` finds what a lost message left behind. Functions
take the caller's session and never commit, but for `lease_kept`, which renews a lease in
transactions of its own while a call runs."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from channels.registry import KINDS
from publisher.db import Database
from publisher.models import (
    CLAIMABLE_STATES,
    Delivery,
    DeliveryState,
    utcnow,
)

log = logging.getLogger(__name__)


def backoff_seconds(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Capped exponential backoff with "equal jitter": half fixed, half random.

    `failures` counts consecutive failures (1 for the first). The fixed half keeps retries
    from bunching at zero; the random half spreads workers that failed together.
    """
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


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


@contextmanager
def lease_kept(
    database: Database, lease_seconds: float, delivery_id: int, worker: str
) -> Iterator[None]:
    """Renew the lease every third of its length while a channel call runs, so that a slow
    call (a WeChat publish is several requests) is never taken over half-way."""
    stop = threading.Event()
    every = max(0.5, lease_seconds / 3)

    def renew() -> None:
        while not stop.wait(every):
            try:
                with database.session() as session:
                    session.execute(
                        update(Delivery)
                        .where(Delivery.id == delivery_id, Delivery.lease_owner == worker)
                        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
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
