"""Reading, checking and pruning the audit trail (`publisher.audit` writes it): what
`publisher audit`, `GET /audit` and beat's daily prune share.

`verify_chain` and `prune_audit_trail` own their transactions, as entry points do:
verification reads the trail in short transactions of `VERIFY_BATCH` rows each, in id order,
so that a million rows are never held at once and writers are never held up for long; the
prune is one transaction. `list_audit` takes the caller's session.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from publisher.audit import (
    HASHED,
    PRUNE_ACTION,
    ChainReport,
    ChainRow,
    Pruned,
    prune_chain,
    walk_chain,
)
from publisher.config import Settings
from publisher.db import Database
from publisher.models import AuditEvent, utcnow

VERIFY_BATCH = 5000
_TABLE = AuditEvent.__table__
_COLUMNS = [_TABLE.c.id, _TABLE.c.row_hash, *(_TABLE.c[name] for name in HASHED)]


# --- verifying -----------------------------------------------------------------------------------


def verify_chain(database: Database, *, batch_size: int = VERIFY_BATCH) -> ChainReport:
    """Walk the whole trail from its oldest remaining row (`publisher.audit.walk_chain`),
    accepting links to pruned rows as `pruned_before` says."""
    return walk_chain(
        _rows_in_id_order(database, batch_size), functools.partial(pruned_before, database)
    )


def pruned_before(database: Database, row: ChainRow) -> bool:
    """Whether `row` may chain to a row that is gone: only when pruning removed it, that is
    when a prune row records `row`'s prev_hash as its anchor and no row before `row` is left.
    That holds for the oldest row, and for a later one when a prune removed everything before
    it while the walk was under way."""
    with database.sessions() as session:
        anchors = {
            (details or {}).get("anchor")
            for details in session.scalars(
                select(AuditEvent.details).where(AuditEvent.action == PRUNE_ACTION)
            )
        }
        earlier = session.scalar(select(AuditEvent.id).where(AuditEvent.id < row["id"]).limit(1))
    return row["prev_hash"] in anchors and earlier is None


def _rows_in_id_order(database: Database, batch_size: int) -> Iterator[ChainRow]:
    after: int | None = None
    while True:
        stmt = select(*_COLUMNS).order_by(_TABLE.c.id).limit(batch_size)
        if after is not None:
            stmt = stmt.where(_TABLE.c.id > after)
        # A short read per batch (closed, not committed): on SQLite every transaction takes
        # the write lock, and a walk over a million rows must not hold it throughout. Core
        # rows, not ORM objects: a third less time per row.
        with database.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        if not rows:
            return
        yield from rows
        after = rows[-1]["id"]


def tail_problem(database: Database, report: ChainReport, row_id: int, row_hash: str) -> str | None:
    """Why the row an operator recorded elsewhere (`row_id`, `row_hash`, from
    `audit verify --print-tail`) does not vouch for the trail now; None when it does."""
    with database.sessions() as session:
        found = session.get(AuditEvent, row_id)
        oldest = session.scalar(select(func.min(AuditEvent.id)))
        prunes = [
            details or {}
            for details in session.scalars(
                select(AuditEvent.details).where(AuditEvent.action == PRUNE_ACTION)
            )
        ]
    if found is not None:
        if found.row_hash == row_hash:
            return None
        return (
            f"row {row_id} now hashes to {found.row_hash}, not the {row_hash} recorded: "
            "the chain was rewritten from that row on"
        )
    if report.tail_id is None:
        return f"the trail is empty: row {row_id} and every row after it were removed"
    if row_id > report.tail_id:
        return (
            f"row {row_id} does not exist; the trail ends at row {report.tail_id}: "
            "rows were removed from its end"
        )
    if oldest is not None and row_id < oldest:
        for details in prunes:
            if details.get("through_id") == row_id:
                if details.get("anchor") == row_hash:
                    return None
                return (
                    f"row {row_id} was pruned with the hash {details.get('anchor')}, not {row_hash}"
                )
        return (
            f"row {row_id} was pruned and no remaining prune row ends at it, so it can no "
            "longer be compared; record a newer tail (--print-tail)"
        )
    return f"row {row_id} is missing from the middle of the trail"


# --- pruning -------------------------------------------------------------------------------------


def prune_audit_trail(
    database: Database, settings: Settings, *, actor: str, dry_run: bool = False
) -> Pruned:
    """Remove the rows older than `PUBLISHER_AUDIT_RETENTION_DAYS`, recorded in a chained
    row of its own, in one transaction (`publisher.audit.prune_chain`)."""
    cutoff = utcnow() - timedelta(days=settings.audit_retention_days)
    with database.session() as session:
        return prune_chain(
            session,
            cutoff,
            actor=actor,
            dry_run=dry_run,
            retention_days=settings.audit_retention_days,
        )


# --- listing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """`actor` exactly, `action` by prefix (`item.` for every item action), `item` by id,
    `since` (inclusive) and `until` (exclusive) by time."""

    actor: str | None = None
    action: str | None = None
    item: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def as_aware(moment: datetime | None, timezone: str) -> datetime | None:
    """A time without an offset is taken in the organisation's time zone (what staff mean)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(timezone))


def audit_view(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "subject": row.subject,
        "item_id": row.item_id,
        "revision_id": row.revision_id,
        "client_address": row.client_address,
        "details": row.details or {},
        "prev_hash": row.prev_hash,
        "row_hash": row.row_hash,
    }


def _filtered(stmt: Select[Any], filters: AuditFilters) -> Select[Any]:
    if filters.actor:
        stmt = stmt.where(AuditEvent.actor == filters.actor)
    if filters.action:
        stmt = stmt.where(AuditEvent.action.startswith(filters.action, autoescape=True))
    if filters.item is not None:
        stmt = stmt.where(AuditEvent.item_id == filters.item)
    if filters.since is not None:
        stmt = stmt.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditEvent.at < filters.until)
    return stmt


def list_audit(
    session: Session, filters: AuditFilters, *, limit: int, offset: int
) -> dict[str, Any]:
    """Audit rows matching `filters`, newest first, with their hashes."""
    total = session.scalar(_filtered(select(func.count(AuditEvent.id)), filters)) or 0
    rows = session.scalars(
        _filtered(select(AuditEvent), filters)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "results": [audit_view(row) for row in rows],
    }
