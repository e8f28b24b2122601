"""The organisation-wide freeze: hold publishing and edits of non-urgent items (withdrawals
still go out), then lift it and wake what it held. Services never commit."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.delivery.ops import wake_waiting
from publisher.errors import Conflict, FieldProblem, InvalidInput
from publisher.i18n import t
from publisher.models import (
    Freeze,
    WaitReason,
    utcnow,
)

log = logging.getLogger(__name__)


def active_freeze(session: Session) -> Freeze | None:
    return session.scalars(
        select(Freeze).where(Freeze.lifted_at.is_(None)).order_by(Freeze.id.desc())
    ).first()


def start_freeze(session: Session, reason: str, *, actor: str) -> Freeze:
    """Hold all publishing and edits of items not marked urgent, organisation-wide.

    Withdrawals still go out. Raises `InvalidInput` without a reason, `Conflict` when a freeze
    is already in force.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput([FieldProblem("reason", "required", "say why publishing is frozen")])
    if active_freeze(session) is not None:
        raise Conflict("a freeze is already in force; lift it first", zh=t("refusal.freeze_exists"))
    freeze = Freeze(reason=reason, started_by=actor)
    session.add(freeze)
    session.flush()
    audit(session, actor, "freeze.start", f"freeze:{freeze.id}", reason=reason)
    return freeze


def lift_freeze(session: Session, *, actor: str) -> tuple[Freeze, int]:
    """End the freeze; what it held becomes due now. Returns it and how many were woken."""
    freeze = active_freeze(session)
    if freeze is None:
        raise Conflict("no freeze is in force", zh=t("refusal.no_freeze"))
    freeze.lifted_at, freeze.lifted_by = utcnow(), actor
    woken = wake_waiting(session, reasons=(WaitReason.FREEZE,))
    audit(session, actor, "freeze.lift", f"freeze:{freeze.id}", woken=woken)
    return freeze, woken


def freeze_view(freeze: Freeze | None) -> dict[str, Any]:
    if freeze is None:
        return {"active": False}
    return {
        "active": freeze.lifted_at is None,
        "id": freeze.id,
        "reason": freeze.reason,
        "started_at": freeze.started_at,
        "started_by": freeze.started_by,
        "lifted_at": freeze.lifted_at,
        "lifted_by": freeze.lifted_by,
    }
