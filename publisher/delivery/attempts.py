"""Every call to a channel is an `Attempt` row, written before the call (outcome `started`)
and finished after it; the operator's view is built on these rows. A worker that died mid-call
leaves its attempt `started`, found through the delivery's `in_flight` mark.

Functions take the caller's session and never commit.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session

from channels.base import Publication
from channels.errors import ChannelError
from publisher.models import Attempt, AttemptOutcome, Delivery, utcnow

# Attempt rows are only ever inserted and finished here, never read back during a sync: plain
# Core statements on the table skip the ORM's unit of work on the hot path.
ATTEMPTS = cast(Table, Attempt.__table__)


def abandon_unfinished(session: Session, delivery: Delivery) -> None:
    """Attempts left `started` by a worker that died; their outcome is unknown.

    Starting an attempt marks the delivery `in_flight` in the same commit, and recording
    it clears the mark: without the mark there is no unfinished attempt to look for."""
    if not delivery.in_flight:
        return
    session.execute(
        update(Attempt)
        .where(Attempt.delivery_id == delivery.id, Attempt.outcome == AttemptOutcome.STARTED)
        .values(
            outcome=AttemptOutcome.ABANDONED,
            finished_at=utcnow(),
            explanation="the worker stopped during this call; its lease expired",
        )
        .execution_options(synchronize_session=False)
    )
    # A write may have reached the channel before the worker died: look before writing.
    delivery.uncertain = True
    delivery.in_flight = None


def start_attempt(
    session: Session, delivery: Delivery, action: str, pub: Publication | None, worker: str
) -> int:
    """Write the attempt row (outcome `started`) and mark the delivery `in_flight`, in the
    caller's transaction, which commits before the call. Returns the attempt's id."""
    delivery.attempt_count += 1
    if action in ("create", "update"):
        assert pub is not None
        delivery.attempted_revision_id = pub.revision_id
        if pub.website_url:
            delivery.attempted_website_url = pub.website_url
    delivery.in_flight = action
    attempt_id: int = session.execute(
        insert(ATTEMPTS)
        .values(
            delivery_id=delivery.id,
            number=delivery.attempt_count,
            action=action,
            revision_id=pub.revision_id if pub else None,
            worker=worker,
        )
        .returning(ATTEMPTS.c.id)
    ).scalar_one()
    return attempt_id


def finish_attempt(
    session: Session,
    attempt_id: int,
    outcome: AttemptOutcome,
    started: float,
    exc: ChannelError | None = None,
    note: str | None = None,
) -> None:
    """Finish the attempt; `exc` is the channel's error, `note` a remark on a success."""
    values: dict[str, Any] = {
        "outcome": outcome,
        "finished_at": utcnow(),
        "duration_ms": int((time.monotonic() - started) * 1000),
    }
    if note:
        values["explanation"] = note
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
