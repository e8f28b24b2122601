"""The audit trail: who did what to which object, written in the caller's transaction.

Append-only and chained: each row holds the SHA-256 of the row before it (`prev_hash`) and its
own (`row_hash`, over a canonical encoding of its fields and `prev_hash`), so that changing,
removing or reordering a row breaks every hash after it (`walk_chain`). Rows are chained as
they are written: on PostgreSQL a transaction-scoped advisory lock orders the writers (held
until the writer commits); SQLite has one writer at a time anyway (`BEGIN IMMEDIATE`).

Only pruning removes rows, from the oldest end: it records, in a chained row of its own
(`PRUNE_ACTION`), the hash of the last row it removed, the anchor the oldest remaining row may
chain to.

The client address comes from the context (`client_address_as`): the API's middleware sets it
per request, the CLI per command, so that no route or command has to pass it.

Imports only the models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, event, func, select, text
from sqlalchemy.orm import Session

from publisher.models import AuditEvent, Delivery, Revision, utcnow

log = logging.getLogger(__name__)

# pg_advisory_xact_lock's key for the chain's tail (any constant no other lock uses).
CHAIN_LOCK = 0x5075_6241  # "PubA"
_TAIL_KEY = "publisher.audit.tail"
PRUNE_ACTION = "audit.prune"
# A row as the chain's walk reads it: `id`, `row_hash` and the `HASHED` fields by name.
ChainRow = Mapping[Any, Any]

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

# Where the current request or command comes from (an IP address, `cli@host`); None: a
# process of our own (worker, beat).
_client_address: ContextVar[str | None] = ContextVar("publisher_audit_client", default=None)
_SUBJECT = re.compile(r"(item|delivery):(\d+)")


def current_client_address() -> str | None:
    """The client address `audit()` records when it is given none."""
    return _client_address.get()


@contextmanager
def client_address_as(address: str | None) -> Iterator[None]:
    """Record `address` as the client of every `audit()` in this context (a request)."""
    token = _client_address.set(address[:64] if address else address)
    try:
        yield
    finally:
        _client_address.reset(token)


def digest(fields: Mapping[Any, Any]) -> str:
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
    lock_chain(session)
    found: str | None = session.scalars(
        select(AuditEvent.row_hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    return found


def lock_chain(session: Session) -> None:
    """Take the chain's lock for the rest of the transaction (PostgreSQL; SQLite's writers
    queue on `BEGIN IMMEDIATE` already). Pruning takes it before deleting, so that no writer
    chains to a row it removes."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})


def _item_and_revision(session: Session, subject: str) -> tuple[int | None, int | None]:
    """The item (and revision) a subject `item:<id>` or `delivery:<id>` is about: an item's
    newest revision, a delivery's desired one."""
    match = _SUBJECT.fullmatch(subject)
    if match is None:
        return None, None
    kind, number = match.group(1), int(match.group(2))
    if kind == "delivery":
        delivery = session.get(Delivery, number)
        if delivery is None:
            return None, None
        return delivery.item_id, delivery.desired_revision_id
    newest: int | None = session.scalars(
        select(Revision.id).where(Revision.item_id == number).order_by(Revision.number.desc())
    ).first()
    return number, newest


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
    """Append one chained row to the trail in the caller's transaction; returns it.

    Without `item_id`, a subject `item:<id>` or `delivery:<id>` names the item; without
    `revision_id`, the item's newest revision is recorded (a delivery's: the one it is to
    show); without `client_address`, the context's (`client_address_as`).
    """
    if item_id is None:
        item_id, derived_revision = _item_and_revision(session, subject)
        revision_id = revision_id if revision_id is not None else derived_revision
    elif revision_id is None:
        _, revision_id = _item_and_revision(session, f"item:{item_id}")
    row = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        item_id=item_id,
        revision_id=revision_id,
        client_address=client_address or current_client_address(),
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


# --- pruning the oldest rows -------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """What a prune removed (or would remove): rows up to `through_id`, `count` of them, and
    `anchor`, the hash of the last one, which the oldest remaining row chains to."""

    through_id: int | None
    count: int
    anchor: str | None
    cutoff: datetime


def prune_chain(
    session: Session, cutoff: datetime, *, actor: str, dry_run: bool = False, **details: Any
) -> Pruned:
    """Remove the rows from the oldest up to the newest one written before `cutoff`, in the
    caller's transaction, and append a chained `PRUNE_ACTION` row recording the anchor.

    On PostgreSQL the append-only trigger lets this transaction's DELETE through
    (`SET LOCAL publisher.audit_prune`), and only that statement. With `dry_run`, only says
    what it would remove.
    """
    # The lock first: no writer may chain to a row this removes, and the prune row chains to
    # the tail as it was (even when every row goes).
    session.info[_TAIL_KEY] = _chain_tail(session)
    through_id: int | None = session.scalar(
        select(func.max(AuditEvent.id)).where(AuditEvent.at < cutoff)
    )
    if through_id is None:
        return Pruned(None, 0, None, cutoff)
    count = session.scalar(select(func.count()).where(AuditEvent.id <= through_id)) or 0
    anchor = session.scalar(select(AuditEvent.row_hash).where(AuditEvent.id == through_id))
    pruned = Pruned(through_id, count, anchor, cutoff)
    if dry_run:
        return pruned
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SET LOCAL publisher.audit_prune = 'on'"))
    session.execute(
        delete(AuditEvent).where(AuditEvent.id <= through_id),
        execution_options={"synchronize_session": False},
    )
    if postgres:
        session.execute(text("SET LOCAL publisher.audit_prune = 'off'"))
    audit(
        session,
        actor,
        PRUNE_ACTION,
        "audit_events",
        through_id=through_id,
        count=count,
        anchor=anchor,
        cutoff=cutoff.isoformat(),
        **details,
    )
    return pruned


# --- checking the chain ------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """The first row where the chain does not hold, and why."""

    row_id: int
    reason: str
    at: datetime | None = None
    action: str | None = None


@dataclass(frozen=True)
class ChainReport:
    """What a walk over the chain found: how many rows it checked, the first broken one (None:
    the chain holds) and the last row checked (what an operator records elsewhere)."""

    checked: int
    broken: Broken | None
    tail_id: int | None
    tail_hash: str | None


GAP_AT_START = "rows before it were removed outside pruning (no prune row records its prev_hash)"
GAP = "its prev_hash is not the hash of the row before it (a row before it was removed or altered)"
ALTERED = "its content does not match its hash (the row was altered)"


def walk_chain(
    rows: Iterable[ChainRow],
    pruned_before: Callable[[ChainRow], bool] = lambda _row: False,
) -> ChainReport:
    """Walk `rows` (mappings with `id`, `row_hash` and the `HASHED` fields) in id order: each
    must chain to the one before it and hash to its `row_hash`. The first row may start the
    chain (no `prev_hash`); a row whose `prev_hash` does not match the one before it (the first
    included) is accepted only when `pruned_before(row)` says pruning removed what it chains to.
    """
    previous: str | None = None
    checked, first = 0, True
    last: ChainRow | None = None
    for row in rows:
        prev_hash = row["prev_hash"]
        genesis = first and prev_hash is None
        if not genesis and (first or prev_hash != previous) and not pruned_before(row):
            reason = GAP_AT_START if first else GAP
            return ChainReport(checked, _broken(row, reason), *_tail(last))
        if row["row_hash"] != digest(row):
            return ChainReport(checked, _broken(row, ALTERED), *_tail(last))
        previous, first, last = row["row_hash"], False, row
        checked += 1
    return ChainReport(checked, None, *_tail(last))


def verify_rows(rows: Iterable[AuditEvent], anchor: str | None = None) -> Broken | None:
    """Walk ORM rows in id order: each must chain to the one before it (the first to `anchor`)
    and hash to its `row_hash`. None when the chain holds."""
    previous = anchor
    first = True
    for row in rows:
        if not (first and anchor is None and row.prev_hash is None) and row.prev_hash != previous:
            return Broken(row.id, GAP, row.at, row.action)
        if row.row_hash != row_digest(row):
            return Broken(row.id, ALTERED, row.at, row.action)
        previous, first = row.row_hash, False
    return None


def _broken(row: ChainRow, reason: str) -> Broken:
    return Broken(row["id"], reason, row.get("at"), row.get("action"))


def _tail(row: ChainRow | None) -> tuple[int | None, str | None]:
    return (None, None) if row is None else (row["id"], row["row_hash"])
