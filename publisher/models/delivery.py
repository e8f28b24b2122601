"""What the engine keeps: channels' operator state, deliveries and their attempts, the freeze,
the 索引号 counter, shared values, media, WeChat digests and drift."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from publisher.models.base import (
    AttemptOutcome,
    Base,
    DeliveryState,
    utcnow,
    value_enum,
)
from publisher.models.items import Item


class Channel(Base):
    """Operator-visible state of one channel kind (paused, needs re-authorisation)."""

    __tablename__ = "channels"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    needs_reauth: Mapped[bool] = mapped_column(Boolean, default=False)
    reauth_reason: Mapped[str | None] = mapped_column(Text)
    # Circuit breaker: consecutive channel failures across all its deliveries; while open,
    # deliveries wait and, once `breaker_open_until` passes, a single probe tests the channel.
    breaker_failures: Mapped[int] = mapped_column(Integer, default=0)
    breaker_trips: Mapped[int] = mapped_column(Integer, default=0)
    breaker_open_until: Mapped[datetime | None] = mapped_column()
    breaker_probe_owner: Mapped[str | None] = mapped_column(String(128))
    breaker_probe_expires: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("item_id", "channel_kind"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        Index("ix_deliveries_channel_state", "channel_kind", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    channel_kind: Mapped[str] = mapped_column(String(32))
    desired_revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))
    desired_present: Mapped[bool] = mapped_column(Boolean, default=True)
    applied_revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))
    remote_id: Mapped[str | None] = mapped_column(String(200))
    remote_url: Mapped[str | None] = mapped_column(String(1000))
    # The adapter's own state of its copy (ids of jobs, media…): the engine passes it back to
    # the adapter in `Remote.state` and never reads it by key.
    remote_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The engine's own bookkeeping of the calls it made, apart from the adapter's state.
    # The action of an attempt started and not yet recorded (a worker that died leaves it).
    in_flight: Mapped[str | None] = mapped_column(String(16))
    # A write may have taken effect without our knowing: look the channel up before writing.
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    # The channel accepted work it finishes later (WeChat's publish job): look it up again.
    incomplete: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the last create or update sent: a lookup searches for that revision, with the
    # website link it carried (the page may be gone since).
    attempted_revision_id: Mapped[int | None] = mapped_column(Integer)
    attempted_website_url: Mapped[str | None] = mapped_column(String(1000))
    state: Mapped[DeliveryState] = mapped_column(
        value_enum(DeliveryState), default=DeliveryState.PENDING
    )
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column()
    last_error_kind: Mapped[str | None] = mapped_column(String(32))
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[str | None] = mapped_column(Text)
    # When the sweeper last handed this delivery to the broker (it re-sends only after a while).
    dispatched_at: Mapped[datetime | None] = mapped_column()
    # Why a pending/deferred delivery is waiting (see `WaitReason`); None when it is not.
    wait_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Indexed: the operator's charts read the last day's deliveries that went live.
    live_at: Mapped[datetime | None] = mapped_column(index=True)

    item: Mapped[Item] = relationship(lazy="raise_on_sql")

    def forget_remote(self) -> None:
        """Nothing of ours is on the channel (withdrawn, or never found there): drop what was
        recorded of its copy, and the bookkeeping of the calls that made it."""
        self.remote_id = self.remote_url = None
        self.applied_revision_id = None
        self.remote_state = {}
        self.forget_attempts()

    def forget_attempts(self) -> None:
        """Drop the engine's bookkeeping of earlier calls: the channel's copy is known anew."""
        self.in_flight = None
        self.uncertain = self.incomplete = False
        self.attempted_revision_id = self.attempted_website_url = None


class Attempt(Base):
    """One call to a channel, written before (outcome `started`) and after the call."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))
    worker: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Indexed: the operator's dashboard and charts read the last hours' attempts by when they
    # ended, and the table holds every attempt ever made.
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[AttemptOutcome] = mapped_column(
        value_enum(AttemptOutcome), default=AttemptOutcome.STARTED
    )
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class AttemptCounter(Base):
    """Attempts ended so far per channel, outcome and duration bucket: what `/metrics` reads
    rather than counting `attempts` at every scrape (a few dozen rows, whatever the history).

    Kept by `publisher.delivery.attempts` in the transaction that ends each attempt, so the
    figures never lag the rows nor count one twice, and stay monotonic across restarts.
    """

    __tablename__ = "attempt_counters"

    channel_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The upper bound of the duration's bucket in seconds as Prometheus writes it ("0.05",
    # "+Inf"); "" for attempts ended without a duration (abandoned by another worker).
    le: Mapped[str] = mapped_column(String(16), primary_key=True)
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class Freeze(Base):
    """An organisation-wide publishing freeze (a day of mourning, an emergency).

    While one is active (`lifted_at` is None), publishing and edits of items not marked urgent
    wait; withdrawals still go out.
    """

    __tablename__ = "freezes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by: Mapped[str] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None] = mapped_column()
    lifted_by: Mapped[str | None] = mapped_column(String(64))


class IndexSerial(Base):
    """The last 索引号 serial handed out per organisation and year (never reused)."""

    __tablename__ = "index_serials"

    org_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_serial: Mapped[int] = mapped_column(Integer, default=0)


class SharedValue(Base):
    """Embedded stand-in for Redis: shared tokens and rate windows when running on SQLite."""

    __tablename__ = "shared_values"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column()


class Media(Base):
    """An uploaded image (cover or inline), served at `/media/{sha256}`."""

    __tablename__ = "media"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeChatDigestState(enum.StrEnum):
    SENDING = "sending"  # WeChat accepted the mass send; its result has not come yet
    SENT = "sent"  # WeChat sent it (MASSSENDJOBFINISH or mass/get), or had its clientmsgid
    UNKNOWN = "unknown"  # the sendall answer was lost: resend with the same clientmsgid
    FAILED = "failed"  # WeChat refused or failed the digest; its items are not pushed again
    REJECTED = "rejected"  # an administrator refused it (群发保护); not pushed again either


class WeChatDigest(Base):
    """One daily mass send to one audience ("all" or "tag:<id>"), of up to 8 articles."""

    __tablename__ = "wechat_digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)  # the day in Beijing
    audience: Mapped[str] = mapped_column(String(64))
    clientmsgid: Mapped[str] = mapped_column(String(64), unique=True)
    media_id: Mapped[str | None] = mapped_column(String(128))
    msg_id: Mapped[str | None] = mapped_column(String(64), index=True)
    msg_data_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[WeChatDigestState] = mapped_column(value_enum(WeChatDigestState))
    # WeChat's own words for the result: MASSSENDJOBFINISH's Status ("send success",
    # "err(30001)", …) or mass/get's msg_status.
    result: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()  # accepted by WeChat
    finished_at: Mapped[datetime | None] = mapped_column()  # its result known

    entries: Mapped[list[WeChatDigestEntry]] = relationship(
        back_populates="digest",
        order_by="WeChatDigestEntry.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class WeChatDigestEntry(Base):
    """Which item went in which digest: an item reaches each of its audiences once."""

    __tablename__ = "wechat_digest_entries"
    __table_args__ = (UniqueConstraint("item_id", "audience"),)

    digest_id: Mapped[int] = mapped_column(ForeignKey("wechat_digests.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    audience: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    article_id: Mapped[str | None] = mapped_column(String(128))
    # The article's place in the mass-sent message, from 1, as `message/mass/delete` takes it.
    article_idx: Mapped[int | None] = mapped_column(Integer)

    digest: Mapped[WeChatDigest] = relationship(back_populates="entries")


class DriftKind(enum.StrEnum):
    MISSING = "missing"  # a live delivery's copy is gone from the channel
    CHANGED = "changed"  # the channel holds other content than the applied revision
    REAPPEARED = "reappeared"  # a withdrawn delivery's copy is back on the channel


class DriftResolution(enum.StrEnum):
    REPAIRED = "repaired"  # handed to the engine to bring the channel back in line
    REPORTED = "reported"  # recorded only (policy "report", or a repair that did not hold)
    GONE = "gone"  # found in line again without a repair of ours (closed)


class Drift(Base):
    """A difference between the store and a channel, found by reconciliation.

    At most one is open (`resolved_at` None) per delivery. `resolution` says what was done:
    `repaired` or `reported` while open; a later check that finds the channel in line closes
    it, keeping `repaired`, or turning `reported` into `gone`.
    """

    __tablename__ = "drifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    channel_kind: Mapped[str] = mapped_column(String(32))
    kind: Mapped[DriftKind] = mapped_column(value_enum(DriftKind))
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resolution: Mapped[DriftResolution] = mapped_column(value_enum(DriftResolution))
    resolved_at: Mapped[datetime | None] = mapped_column()


class DriftCheck(Base):
    """When reconciliation last looked at a delivery, so each run takes the stalest first.

    Kept apart from `deliveries`: the engine owns that row (claims, leases, `updated_at` in
    the operator's queue), and a check that finds nothing must not touch it.
    """

    __tablename__ = "drift_checks"

    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # in_line | drift | error | moved


# Two checks running at once (beat and an operator) cannot open the same drift twice.
Index(
    "uq_drifts_open_delivery",
    Drift.delivery_id,
    unique=True,
    sqlite_where=Drift.resolved_at.is_(None),
    postgresql_where=Drift.resolved_at.is_(None),
)
