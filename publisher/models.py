"""The canonical store: typed SQLAlchemy 2 models (docs/architecture.md).

An *item* has immutable *revisions*; a *delivery* says "channel C must show revision R of item
I" (or must not show it); every call to a channel is an *attempt* row. Enums are stored by value.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(
        cls,
        values_callable=lambda members: [m.value for m in members],
        native_enum=False,
        validate_strings=True,
        length=16,
    )


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Role(enum.StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"  # writes items of their departments
    REVIEWER = "reviewer"  # approves items of their departments (审查)
    OPERATOR = "operator"  # runs the delivery queue and the channels
    SUPERVISOR = "supervisor"  # 政务服务中心: reads everything


# Roles bound to one or more departments.
DEPARTMENT_ROLES = (Role.EDITOR, Role.REVIEWER)


class ItemStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"  # waiting for its review stages
    APPROVED = "approved"  # every stage approved this revision
    PUBLISHED = "published"
    RETRACTED = "retracted"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    DEFERRED = "deferred"
    LIVE = "live"
    WITHDRAWN = "withdrawn"
    FAILED = "failed"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"


# States a worker may claim once `next_attempt_at` is due.
CLAIMABLE_STATES = (
    DeliveryState.PENDING,
    DeliveryState.RETRYING,
    DeliveryState.DEFERRED,
    DeliveryState.UNKNOWN,
)
SETTLED_STATES = (
    DeliveryState.LIVE,
    DeliveryState.WITHDRAWN,
    DeliveryState.FAILED,
    DeliveryState.CANCELLED,
)


# A delivery parked until the website page exists is woken when the page goes live; this
# due time is only the safety net for a lost wake-up.
WEBSITE_WAIT_SECONDS = 300.0


class WaitReason(enum.StrEnum):
    """Why a delivery waits without being tried; the matching control wakes it."""

    PAUSED = "paused"  # the operator paused the channel
    REAUTH = "reauth"  # the channel needs re-authorisation
    FREEZE = "freeze"  # an organisation-wide freeze holds non-urgent publishing
    BREAKER = "breaker"  # the channel's circuit breaker is open
    RATE_LIMIT = "rate_limit"  # the channel's rate window or daily quota is spent
    WEBSITE = "website"  # waiting for the website page it links to
    DISABLED = "disabled"  # the channel is not configured here


class AttemptOutcome(enum.StrEnum):
    STARTED = "started"
    OK = "ok"
    RETRY = "retry"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"
    ABANDONED = "abandoned"  # the worker died mid-call; its lease expired


DEFAULT_REVIEW_STAGES = ("初审", "终审")


class Domain(Base):
    __tablename__ = "domains"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    catecode: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The review stages an item of this domain passes before it publishes, in order (0–3).
    review_stages: Mapped[list[str]] = mapped_column(default=lambda: list(DEFAULT_REVIEW_STAGES))
    # Item fields this domain requires before publishing (e.g. "doc_number" for documents).
    required_metadata: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    departments: Mapped[list[Department]] = relationship(
        secondary="domain_departments", order_by="Department.code", lazy="selectin"
    )


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DomainDepartment(Base):
    __tablename__ = "domain_departments"

    domain_code: Mapped[str] = mapped_column(ForeignKey("domains.code"), primary_key=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), primary_key=True)


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_code: Mapped[str] = mapped_column(ForeignKey("domains.code"))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    status: Mapped[ItemStatus] = mapped_column(_enum(ItemStatus), default=ItemStatus.DRAFT)
    index_no: Mapped[str | None] = mapped_column(String(48), unique=True)
    channels: Mapped[list[str]] = mapped_column(default=list)
    push_tags: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Published on the urgent path with fewer approvals than its stages: reviewed afterwards,
    # flagged until then.
    post_review_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last send-back's comment, shown to the editor until the item is submitted again.
    sent_back_comment: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column()
    published_at: Mapped[datetime | None] = mapped_column()
    retracted_at: Mapped[datetime | None] = mapped_column()

    revisions: Mapped[list[Revision]] = relationship(
        back_populates="item", order_by="Revision.number", lazy="raise_on_sql"
    )
    domain: Mapped[Domain] = relationship(lazy="joined", innerjoin=True)
    department: Mapped[Department] = relationship(lazy="joined", innerjoin=True)


class Revision(Base):
    """An immutable version of an item's content; `content_hash` covers every rendered field."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("item_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    short_title: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text)
    body_markdown: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(default=list)
    doc_number: Mapped[str | None] = mapped_column(String(64))
    formed_on: Mapped[date] = mapped_column(Date)
    cover_image: Mapped[str | None] = mapped_column(String(1000))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="revisions", lazy="raise_on_sql")


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
        _enum(DeliveryState), default=DeliveryState.PENDING
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
    live_at: Mapped[datetime | None] = mapped_column()

    item: Mapped[Item] = relationship(lazy="raise_on_sql")

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
    finished_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[AttemptOutcome] = mapped_column(
        _enum(AttemptOutcome), default=AttemptOutcome.STARTED
    )
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


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


class AuditEvent(Base):
    """One action, append-only: each row holds the hash of the one before it (a chain)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    item_id: Mapped[int | None] = mapped_column(Integer, index=True)
    revision_id: Mapped[int | None] = mapped_column(Integer)
    client_address: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    """A person (or a service) who signs in: a role, departments for editors and reviewers."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    # argon2id (argon2-cffi); None: the user signs in with API tokens only.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column()

    departments: Mapped[list[Department]] = relationship(
        secondary="user_departments", order_by="Department.code", lazy="selectin"
    )


class UserDepartment(Base):
    __tablename__ = "user_departments"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), primary_key=True)


class Approval(Base):
    """A reviewer's approval of one stage, bound to the exact text (the revision's content
    hash): an edit voids it. `post_review` marks the review of an item published urgently."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    stage: Mapped[int] = mapped_column(Integer)
    stage_name: Mapped[str] = mapped_column(String(32))
    reviewer: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    post_review: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column()


class FindingOverride(Base):
    """A reviewer's decision that a revision's findings may go out, with the reason."""

    __tablename__ = "finding_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    reviewer: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    # What the reviewer let go: a finding appearing later on the same text blocks again.
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SensitiveWord(Base):
    """A word the pre-publish check flags (managed at run time)."""

    __tablename__ = "sensitive_words"

    word: Mapped[str] = mapped_column(String(64), primary_key=True)
    added_by: Mapped[str | None] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A user's bearer token; only its SHA-256 is stored, with a short prefix to recognise it
    by. The caller is its user: role and departments come from there."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(128))  # the token's name
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


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


# --- WeChat push digests (issue 3) ---


class WeChatDigestState(enum.StrEnum):
    SENT = "sent"  # WeChat accepted the mass send (or already had its clientmsgid)
    UNKNOWN = "unknown"  # the sendall answer was lost: resend with the same clientmsgid
    FAILED = "failed"  # WeChat refused the digest for good; its items are not pushed again


class WeChatDigest(Base):
    """One daily mass send to one audience ("all" or "tag:<id>"), of up to 8 articles."""

    __tablename__ = "wechat_digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)  # the day in Beijing
    audience: Mapped[str] = mapped_column(String(64))
    clientmsgid: Mapped[str] = mapped_column(String(64), unique=True)
    media_id: Mapped[str | None] = mapped_column(String(128))
    msg_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[WeChatDigestState] = mapped_column(_enum(WeChatDigestState))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()

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

    digest: Mapped[WeChatDigest] = relationship(back_populates="entries")


# --- Drift (issue 5) ---


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
    kind: Mapped[DriftKind] = mapped_column(_enum(DriftKind))
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resolution: Mapped[DriftResolution] = mapped_column(_enum(DriftResolution))
    resolved_at: Mapped[datetime | None] = mapped_column()


# Two checks running at once (beat and an operator) cannot open the same drift twice.
Index(
    "uq_drifts_open_delivery",
    Drift.delivery_id,
    unique=True,
    sqlite_where=Drift.resolved_at.is_(None),
    postgresql_where=Drift.resolved_at.is_(None),
)


class DriftCheck(Base):
    """When reconciliation last looked at a delivery, so each run takes the stalest first.

    Kept apart from `deliveries`: the engine owns that row (claims, leases, `updated_at` in
    the operator's queue), and a check that finds nothing must not touch it.
    """

    __tablename__ = "drift_checks"

    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # in_line | drift | error | moved
