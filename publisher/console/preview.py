"""The channel previews of an item, for the compose form and the item page: what
`publishing.item_preview` gives (the same as `GET /api/v1/items/{id}/preview`), arranged for
the templates — each channel's rendering, and every finding and channel objection placed
beside the form field it is about (`item_form.form_field`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from channels.weibo_text import LIMIT_UNITS
from publisher.console.item_form import form_field
from publisher.i18n import CATALOGUE, t
from publisher.models import Item, Revision
from publisher.services.findings import KIND_LABELS, PERSONAL_KINDS, FindingKind


@dataclass
class Note:
    """A finding or a channel's objection, beside a field."""

    text: str
    kind: str  # a finding's kind, or "channel"
    blocking: bool = True


@dataclass
class PreviewView:
    channels: dict[str, dict[str, Any]]
    notes: dict[str, list[Note]] = field(default_factory=dict)
    personal_data: int = 0  # findings a mask would take away
    index_no: str | None = None
    cover: str | None = None  # our own upload's path, shown as an image
    weibo_limit: int = LIMIT_UNITS

    def note(self, name: str, note: Note) -> None:
        self.notes.setdefault(form_field(name), []).append(note)

    @property
    def weibo(self) -> dict[str, Any] | None:
        entry = self.channels.get("weibo")
        return entry.get("rendered") if entry else None


def channel_name(kind: str) -> str:
    return t(f"staff.channel.{kind}") if f"staff.channel.{kind}" in CATALOGUE else kind


def preview_view(preview: dict[str, Any], item: Item, revision: Revision) -> PreviewView:
    """`preview` (`publishing.item_preview` of `revision` of `item`) for the templates."""
    view = PreviewView(
        channels={entry["channel"]: entry for entry in preview["channels"]},
        index_no=item.index_no,
        cover=revision.cover_image if (revision.cover_image or "").startswith("/media/") else None,
    )
    for finding in preview["findings"]:
        kind = FindingKind(finding["kind"])
        label = KIND_LABELS[kind]
        shown = f"{label} {finding['text_masked']}".strip()
        view.note(
            finding["field"],
            Note(f"{shown}：{finding['message']}", kind.value, not finding["overridden"]),
        )
        if kind in PERSONAL_KINDS:
            view.personal_data += 1
    for channel, entry in view.channels.items():
        for problem in entry.get("problems", []):
            text = f"{channel_name(channel)}：{problem.get('message_zh') or problem['message']}"
            view.note(problem["field"], Note(text, "channel"))
    return view
