"""People and what they did: users (with departments), their API tokens, review approvals,
finding overrides, the sensitive-word list and the chained audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from publisher.models.base import (
    Base,
    Role,
    utcnow,
    value_enum,
)
from publisher.models.catalog import Department


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
    role: Mapped[Role] = mapped_column(value_enum(Role))
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
