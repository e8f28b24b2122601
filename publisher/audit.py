"""The audit trail: who did what to which object, written in the caller's transaction.

Append-only and chained: each row holds the SHA-256 of the row before it (`prev_hash`) and its
own (`row_hash`, over a canonical encoding of its fields and `prev_hash`), so that changing,
removing or reordering a row breaks every hash after it (`verify_chain`). Rows are chained as
they are written: on PostgreSQL a transaction-scoped advisory lock orders the writers (held
until the writer commits); SQLite has one writer at a time anyway (`BEGIN IMMEDIATE`).
Imports only the models.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from publisher.models import AuditEvent, utcnow

log = logging.getLogger(__name__)

# pg_advisory_xact_lock's key for the chain's tail (any constant no other lock uses).
CHAIN_LOCK = 0x5075_6241  # "PubA"
_TAIL_KEY = "publisher.audit.tail"


HASHED = (
    "at",
    "actor",
    "action",
    "subject",
    "details",
    "item_id",
    "revision_id",
    "client_address",
    "prev_hash",
)


def digest(fields: dict[str, Any]) -> str:
    """SHA-256 over a row's `HASHED` fields (every field but the id and the hash itself), as
    sorted compact JSON, the timestamp in UTC to the microsecond."""
    values = {name: fields.get(name) for name in HASHED}
    at = values["at"]
    if isinstance(at, datetime):
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        values["at"] = at.astimezone(UTC).isoformat(timespec="microseconds")
    values["details"] = values["details"] or {}
    encoded = json.dumps(
        values, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(encoded.encode()).hexdigest()


def row_digest(row: AuditEvent) -> str:
    return digest({name: getattr(row, name) for name in HASHED})


def _chain_tail(session: Session) -> str | None:
    """The hash the next row chains to, taking the chain's lock on PostgreSQL first."""
    if _TAIL_KEY in session.info:
        tail: str | None = session.info[_TAIL_KEY]
        return tail
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    found: str | None = session.scalars(
        select(AuditEvent.row_hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    return found


def audit(
    session: Session,
    actor: str,
    action: str,
    subject: str,
    *,
    item_id: int | None = None,
    revision_id: int | None = None,
    client_address: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one chained row to the trail in the caller's transaction; returns it."""
    row = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        item_id=item_id,
        revision_id=revision_id,
        client_address=client_address,
    )
    row.prev_hash = _chain_tail(session)
    row.row_hash = row_digest(row)
    session.info[_TAIL_KEY] = row.row_hash
    session.add(row)
    return row


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_tail(session: Session) -> None:
    """After a commit or rollback the tail is read again: another writer may have followed."""
    session.info.pop(_TAIL_KEY, None)


@dataclass(frozen=True)
class Broken:
    """The first row where the chain does not hold, and why."""

    row_id: int
    reason: str


def verify_rows(rows: Iterable[AuditEvent], anchor: str | None = None) -> Broken | None:
    """Walk `rows` in id order: each must chain to the one before it (the first to `anchor`)
    and hash to its `row_hash`. None when the chain holds."""
    previous = anchor
    first = True
    for row in rows:
        if not (first and anchor is None and row.prev_hash is None) and row.prev_hash != previous:
            return Broken(row.id, "its prev_hash is not the hash of the row before it")
        if row.row_hash != row_digest(row):
            return Broken(row.id, "its content does not match its hash (the row was altered)")
        previous, first = row.row_hash, False
    return None
