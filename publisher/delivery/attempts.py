"""Every call to a channel is an `Attempt` row, written before the call (outcome `started`)
and finished after it; the operator's view is built on these rows. A worker that died mid-call
leaves its attempt `started`, found through the delivery's `in_flight` mark.

An attempt leaving `started` is counted, in the transaction that ends it, in
`attempt_counters` (by channel, outcome and duration bucket): `/metrics` reads those few rows
instead of aggregating the whole history. An attempt ends once for the counters even when two
workers record it (the second finds it no longer `started`).

Functions take the caller's session and never commit.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import CursorResult, ScalarSelect, Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from channels.base import Publication
from channels.errors import ChannelError
from publisher.models import Attempt, AttemptCounter, AttemptOutcome, Delivery, utcnow

# Attempt rows are only ever inserted and finished here, never read back during a sync: plain
# Core statements on the table skip the ORM's unit of work on the hot path.
ATTEMPTS = cast(Table, Attempt.__table__)
COUNTERS = cast(Table, AttemptCounter.__table__)

# Seconds; channel calls range from a fast upsert to a slow WeChat upload. The buckets an
# attempt is counted in: changing them leaves earlier attempts in their old bounds, which the
# collector folds into the next current one.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
NO_DURATION = ""


def abandon_unfinished(session: Session, delivery: Delivery) -> None:
    """Attempts left `started` by a worker that died; their outcome is unknown.

    Starting an attempt marks the delivery `in_flight` in the same commit, and recording
    it clears the mark: without the mark there is no unfinished attempt to look for."""
    if not delivery.in_flight:
        return
    abandoned = cast(
        CursorResult[Any],
        session.execute(
            update(Attempt)
            .where(Attempt.delivery_id == delivery.id, Attempt.outcome == AttemptOutcome.STARTED)
            .values(
                outcome=AttemptOutcome.ABANDONED,
                finished_at=utcnow(),
                explanation="the worker stopped during this call; its lease expired",
            )
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if abandoned:
        count_ended(session, delivery.channel_kind, AttemptOutcome.ABANDONED, None, abandoned)
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
    ending = update(ATTEMPTS).where(ATTEMPTS.c.id == attempt_id).values(**values)
    delivery_id = session.execute(
        ending.where(ATTEMPTS.c.outcome == AttemptOutcome.STARTED).returning(ATTEMPTS.c.delivery_id)
    ).scalar_one_or_none()
    if delivery_id is None:
        # Another worker ended (and counted) it without a duration: keep this worker's
        # account of the call, and no duration, so that the row and the counters agree.
        session.execute(ending.values(duration_ms=None))
        return
    kind = select(Delivery.channel_kind).where(Delivery.id == delivery_id).scalar_subquery()
    count_ended(session, kind, outcome, values["duration_ms"])


def count_ended(
    session: Session,
    channel_kind: str | ScalarSelect[str],
    outcome: AttemptOutcome,
    duration_ms: int | None,
    attempts: int = 1,
) -> None:
    """Add `attempts` ended attempts (each of `duration_ms`) to their counter row: one
    upsert, which PostgreSQL and SQLite both apply atomically."""
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = upsert(COUNTERS).values(
        channel_kind=channel_kind,
        outcome=outcome.value,
        le=duration_bucket(duration_ms),
        attempts=attempts,
        duration_ms=(duration_ms or 0) * attempts,
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[COUNTERS.c.channel_kind, COUNTERS.c.outcome, COUNTERS.c.le],
            set_={
                "attempts": COUNTERS.c.attempts + stmt.excluded.attempts,
                "duration_ms": COUNTERS.c.duration_ms + stmt.excluded.duration_ms,
            },
        )
    )


def duration_bucket(duration_ms: int | None) -> str:
    """The `le` label of the histogram bucket a duration falls in (`NO_DURATION` for none)."""
    if duration_ms is None:
        return NO_DURATION
    for bound in DURATION_BUCKETS:
        if duration_ms <= bound * 1000:
            return bucket_label(bound)
    return "+Inf"


def bucket_label(bound: float) -> str:
    return repr(float(bound))
