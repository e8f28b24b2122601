"""The audit trail: who did what to which object, written in the caller's transaction."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from publisher.models import (
    AuditEvent,
)

log = logging.getLogger(__name__)


def audit(session: Session, actor: str, action: str, subject: str, **details: Any) -> None:
    session.add(AuditEvent(actor=actor, action=action, subject=subject, details=details))
