"""The declarative base, the UTC datetime type, enums stored by value, and the states and
constants the other model modules and the services share."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
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


def value_enum(cls: type[enum.Enum]) -> Enum:
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
    UNKNOWN = "unknown"  # a write whose outcome is not known: the channel is looked up first
    CANCELLED = "cancelled"
    # The channel accepted the work and finishes it later (WeChat's publish job): nothing is
    # wrong, the engine polls (or a callback pokes it) until the copy is live or refused.
    CONFIRMING = "confirming"


# States a worker may claim once `next_attempt_at` is due.
CLAIMABLE_STATES = (
    DeliveryState.PENDING,
    DeliveryState.RETRYING,
    DeliveryState.DEFERRED,
    DeliveryState.UNKNOWN,
    DeliveryState.CONFIRMING,
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
