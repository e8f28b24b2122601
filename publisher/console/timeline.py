"""An item's history for its page: each revision with what changed since the one before
(a line diff made here, with `difflib`), the review and publishing steps from the audit
trail, and each channel's delivery with its state, why it waits, and the live post's link."""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.models import AuditEvent, DeliveryState, Revision

# The revision's fields staff compare, in the order they are shown.
DIFF_FIELDS = (
    "title",
    "short_title",
    "short_title_wechat",
    "short_title_weibo",
    "wechat_digest",
    "summary",
    "body",
    "keywords",
    "doc_number",
    "formed_on",
    "cover_image",
)
# What the timeline lists of the audit trail (labels: `timeline.action.*`).
ACTIONS = (
    "item.create",
    "item.edit",
    "item.mask",
    "item.submit",
    "item.approve",
    "item.send_back",
    "item.override_findings",
    "item.publish",
    "item.retract",
)
# A delivery in one of these states still has work ahead: the page polls while one does.
OPEN_STATES = frozenset(
    {
        DeliveryState.PENDING,
        DeliveryState.RUNNING,
        DeliveryState.RETRYING,
        DeliveryState.DEFERRED,
        DeliveryState.UNKNOWN,
        DeliveryState.CONFIRMING,
    }
)


@dataclass(frozen=True)
class DiffLine:
    change: str  # "same", "removed" or "added"
    text: str


@dataclass(frozen=True)
class FieldDiff:
    name: str
    lines: list[DiffLine]


@dataclass(frozen=True)
class RevisionEntry:
    revision: Revision
    changes: list[FieldDiff]  # empty for the first revision


def field_text(revision: Revision, name: str) -> str:
    if name == "body":
        return revision.body_markdown if revision.body_markdown is not None else revision.body_html
    if name == "keywords":
        return "，".join(revision.keywords or [])
    if name == "formed_on":
        return revision.formed_on.isoformat()
    if name.startswith("short_title_"):  # a channel's own short title
        return str((revision.short_titles or {}).get(name.removeprefix("short_title_"), ""))
    value = getattr(revision, name)
    return value or ""


def diff_lines(before: str, after: str, context: int = 1) -> list[DiffLine]:
    """The lines of `after` that differ from `before`, with `context` unchanged lines
    around each change."""
    old, new = before.splitlines() or [""], after.splitlines() or [""]
    lines: list[DiffLine] = []
    for group in difflib.SequenceMatcher(None, old, new, autojunk=False).get_grouped_opcodes(
        context
    ):
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [DiffLine("same", text) for text in old[i1:i2]]
                continue
            lines += [DiffLine("removed", text) for text in old[i1:i2] if text or i2 - i1 > 1]
            lines += [DiffLine("added", text) for text in new[j1:j2] if text or j2 - j1 > 1]
    return lines


def revision_changes(older: Revision, newer: Revision) -> list[FieldDiff]:
    changes = []
    for name in DIFF_FIELDS:
        before, after = field_text(older, name), field_text(newer, name)
        if before != after:
            changes.append(FieldDiff(name, diff_lines(before, after)))
    return changes


def revision_entries(session: Session, item_id: int) -> list[RevisionEntry]:
    """The item's revisions, newest first, each with its changes since the one before."""
    revisions = list(
        session.scalars(
            select(Revision).where(Revision.item_id == item_id).order_by(Revision.number)
        )
    )
    entries = [RevisionEntry(revisions[0], [])] if revisions else []
    for older, newer in itertools.pairwise(revisions):
        entries.append(RevisionEntry(newer, revision_changes(older, newer)))
    return entries[::-1]


def item_events(session: Session, item_id: int) -> list[dict[str, Any]]:
    """The review and publishing steps of the item, oldest first: when, who, what, and the
    comment or reason given."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.item_id == item_id, AuditEvent.action.in_(ACTIONS))
        .order_by(AuditEvent.id)
    )
    events = []
    for row in rows:
        details = row.details or {}
        events.append(
            {
                "at": row.at,
                "actor": row.actor,
                "action": row.action,
                "revision": details.get("revision"),
                "stage_name": details.get("stage_name"),
                "note": details.get("comment") or details.get("reason"),
                "index_no": details.get("index_no"),
            }
        )
    return events


def any_open(deliveries: list[dict[str, Any]]) -> bool:
    return any(DeliveryState(d["state"]) in OPEN_STATES for d in deliveries)
