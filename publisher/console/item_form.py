"""The compose form of an item: what the editor typed (kept as typed, to show it again), the
`ItemFields` the item services take, and each problem placed beside the field it is about.

The form is one set of fields for a create and an edit: an edit sends every field, and what
is unchanged makes no new revision (the services compare content hashes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from starlette.datastructures import FormData, UploadFile

from channels.registry import KINDS
from publisher.errors import FieldProblem
from publisher.i18n import t
from publisher.i18n.problems import zh
from publisher.models import Revision
from publisher.services.item_fields import ItemFields

# The form's fields, in the order they are shown (their names are the form's).
TEXT_FIELDS = (
    "title",
    "short_title",
    "short_title_wechat",
    "short_title_weibo",
    "wechat_digest",
    "summary",
    "body",
    "domain",
    "department",
    "doc_number",
    "formed_on",
    "keywords",
    "cover_image",
    "push_tags",
)
PUSH_MODES = ("none", "all", "tags")
BODY_FORMATS = ("markdown", "html")
_SPLIT = re.compile(r"[,，、;；\s]+")


def problem_text(problem: FieldProblem) -> str:
    """What staff read of a problem: its Chinese message from the catalogue."""
    return zh(problem)


def form_field(name: str) -> str:
    """The form field a problem or finding about item field `name` is shown beside."""
    base = name.split("[", 1)[0]
    return {
        "short_titles.wechat": "short_title_wechat",
        "short_titles.weibo": "short_title_weibo",
        "body_html": "body",
        "body_markdown": "body",
        "push": "push_tags",
        "author": "department",
        "file": "cover_file",
        "cover_file": "cover_file",
    }.get(base, base if base in (*TEXT_FIELDS, "channels") else "form")


def split_words(text: str) -> list[str]:
    return [word for word in _SPLIT.split(text.strip()) if word]


@dataclass
class ItemForm:
    """The compose form as typed: strings and choices, never lost on a refusal."""

    values: dict[str, str] = field(default_factory=dict)
    channels: list[str] = field(default_factory=list)
    push_mode: str = "none"
    body_format: str = "markdown"
    urgent: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    @classmethod
    def read(cls, form: FormData | Mapping[str, Any]) -> ItemForm:
        def one(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        chosen = form.getlist("channels") if isinstance(form, FormData) else []
        mode = one("push_mode")
        body_format = one("body_format")
        return cls(
            values={name: one(name) for name in TEXT_FIELDS},
            channels=[kind for kind in chosen if isinstance(kind, str) and kind in KINDS],
            push_mode=mode if mode in PUSH_MODES else "none",
            body_format=body_format if body_format in BODY_FORMATS else "markdown",
            urgent=one("urgent") == "on",
        )

    @classmethod
    def of_revision(
        cls,
        revision: Revision,
        *,
        domain: str,
        department: str,
        channels: Iterable[str],
        push: list[str] | None,
        urgent: bool,
    ) -> ItemForm:
        """The form filled with a saved revision (to edit it)."""
        markdown = revision.body_markdown
        return cls(
            values={
                "title": revision.title,
                "short_title": revision.short_title or "",
                "short_title_wechat": (revision.short_titles or {}).get("wechat", ""),
                "short_title_weibo": (revision.short_titles or {}).get("weibo", ""),
                "wechat_digest": revision.wechat_digest or "",
                "summary": revision.summary or "",
                "body": markdown if markdown is not None else revision.body_html,
                "domain": domain,
                "department": department,
                "doc_number": revision.doc_number or "",
                "formed_on": revision.formed_on.isoformat(),
                "keywords": "，".join(revision.keywords or []),
                "cover_image": revision.cover_image or "",
                "push_tags": "，".join(push or []),
            },
            channels=list(channels),
            push_mode="none" if push is None else ("tags" if push else "all"),
            body_format="markdown" if markdown is not None else "html",
            urgent=urgent,
        )

    def add_error(self, name: str, message: str) -> None:
        self.errors.setdefault(form_field(name), []).append(message)

    def fields(self, *, editing: bool = False) -> ItemFields:
        """The item's fields from the form; a problem of the form itself (a date that is not
        one) is noted in `errors` and leaves the field unset. In an edit an emptied short
        title, channel short title, WeChat digest or 文号 is sent empty (None would mean
        "unchanged")."""
        cleared = "" if editing else None
        text = {name: self.get(name).strip() for name in TEXT_FIELDS}
        formed_on: date | None = None
        if text["formed_on"]:
            try:
                formed_on = date.fromisoformat(text["formed_on"])
            except ValueError:
                self.add_error("formed_on", t("compose.bad_date"))
        if self.push_mode == "tags":
            push: list[str] | None = split_words(text["push_tags"])
            if not push:
                self.add_error("push_tags", t("compose.push_tags_missing"))
        else:
            push = [] if self.push_mode == "all" else None
        body = self.get("body")
        return ItemFields(
            title=text["title"],
            short_title=text["short_title"] or cleared,
            # Both always: an empty one clears its channel's (and on a create, sets none).
            short_titles={"wechat": text["short_title_wechat"], "weibo": text["short_title_weibo"]},
            wechat_digest=text["wechat_digest"] or cleared,
            summary=text["summary"],
            body_html=body if self.body_format == "html" else None,
            body_markdown=body if self.body_format == "markdown" else None,
            domain=text["domain"] or None,
            department=text["department"] or None,
            doc_number=text["doc_number"] or cleared,
            formed_on=formed_on,
            keywords=split_words(text["keywords"]),
            cover_image=text["cover_image"] or None,
            channels=list(self.channels),
            push=push,
            urgent=self.urgent,
        )


def upload_of(form: FormData) -> UploadFile | None:
    """The cover image chosen in the form, if one was."""
    found = form.get("cover_file")
    if isinstance(found, UploadFile) and found.filename:
        return found
    return None
