"""An item's fields as an editor writes them, their checks, and the revision they make.

`validate_fields` finds every problem of a create or an edit before anything is written;
`new_revision` builds the revision (unsaved, with its content hash) that `services.items`
stores, and that a preview of unsaved content (`services.drafts`) shows without storing.
Nothing here touches the session but to read the catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from channels import wechat_render
from channels.registry import KINDS
from channels.weibo_text import TITLE_MAX_UNITS as WEIBO_TITLE_MAX_UNITS
from channels.weibo_text import units as weibo_units
from publisher.config import Settings
from publisher.errors import FieldProblem
from publisher.models import Department, Domain, DomainDepartment, Item, Revision
from publisher.services.content import content_hash
from publisher.services.limits import (
    DOC_NUMBER_MAX,
    KEYWORD_MAX,
    SHORT_TITLE_MAX,
    SUMMARY_MAX,
    TITLE_MAX,
    item_field_problems,
    unsafe_character,
    unsafe_characters,
)

# The channels that take a short title of their own (website and catalogue show the title).
SHORT_TITLE_KINDS = ("wechat", "weibo")


@dataclass
class ItemFields:
    """What an editor writes. `None` in an edit means "unchanged"."""

    title: str | None = None
    body_html: str | None = None
    body_markdown: str | None = None
    summary: str | None = None
    short_title: str | None = None
    # By channel kind; in an edit, the kinds given replace theirs ("" clears one).
    short_titles: dict[str, str] | None = None
    wechat_digest: str | None = None  # in an edit, "" clears it
    domain: str | None = None
    department: str | None = None
    doc_number: str | None = None
    formed_on: date | None = None
    keywords: list[str] | None = None
    cover_image: str | None = None
    channels: list[str] | None = None
    push: list[str] | None = None
    urgent: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def today_local(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.timezone)).date()


def validate_fields(
    session: Session,
    settings: Settings,
    f: ItemFields,
    *,
    creating: bool,
    disabled: dict[str, str | None],
    body: str | None,
) -> list[FieldProblem]:
    """Every problem of `f`, given `body`, the sanitised HTML of the body it sets (if any)."""
    problems = item_field_problems(vars(f))

    def bad(name: str, rule: str, message: str, **values: Any) -> None:
        problems.append(FieldProblem(name, rule, message, values=values))

    if creating or f.title is not None:
        if f.title is None or not f.title.strip():
            bad("title", "required", "title is required and must not be empty")
        elif len(f.title.strip()) > TITLE_MAX:
            bad(
                "title",
                "max_length",
                f"title must be at most {TITLE_MAX} characters",
                limit=TITLE_MAX,
            )
    if creating and not (f.body_html or f.body_markdown):
        bad("body_html", "required", "one of body_html or body_markdown is required")
    if f.body_html is not None and f.body_markdown is not None:
        bad("body_markdown", "exclusive", "give body_html or body_markdown, not both")
    for name in ("body_html", "body_markdown"):
        value = getattr(f, name)
        if value is not None and value.strip() and body is not None and not visible(body):
            bad(name, "not_empty", f"{name} has no content left once scripts and tags are removed")
    for name, limit in (("short_title", SHORT_TITLE_MAX), ("doc_number", DOC_NUMBER_MAX)):
        value = getattr(f, name)
        if value is not None and len(value) > limit:
            bad(name, "max_length", f"{name} must be at most {limit} characters", limit=limit)
    problems += channel_text_problems(f)
    if f.cover_image is not None and not is_cover_url(f.cover_image):
        bad(
            "cover_image",
            "url",
            "cover_image must be an uploaded image (/media/<sha256>, see POST /media) "
            "or an http(s) URL of at most 1000 characters",
        )
    if f.summary is not None and len(f.summary) > SUMMARY_MAX:
        message = f"summary must be at most {SUMMARY_MAX} characters"
        bad("summary", "max_length", message, limit=SUMMARY_MAX)
    if creating and not f.domain:
        bad("domain", "required", "domain is required (a domain code such as 'welfare')")
    if creating and not f.department:
        bad("department", "required", "department is required (a code such as 'sgj')")
    domain = session.get(Domain, f.domain) if f.domain else None
    if f.domain and (domain is None or not domain.active):
        bad("domain", "known", f"unknown or inactive domain {f.domain!r}", value=f.domain)
    department = session.get(Department, f.department) if f.department else None
    if f.department and (department is None or not department.active):
        message = f"unknown or inactive department {f.department!r}"
        bad("department", "known", message, value=f.department)
    if domain is not None and department is not None:
        responsible = session.get(DomainDepartment, (domain.code, department.code))
        if responsible is None:
            bad(
                "department",
                "responsible",
                f"department {department.code!r} is not responsible for domain {domain.code!r}",
                department=f"{department.code} {department.name}",
                domain=f"{domain.code} {domain.name}",
            )
    if creating and f.formed_on is None:
        bad("formed_on", "required", "formed_on (the date the information was formed) is required")
    if f.formed_on is not None and f.formed_on > today_local(settings):
        today = today_local(settings).isoformat()
        bad("formed_on", "not_future", "formed_on must not be in the future", today=today)
    if f.channels is not None:
        for kind in f.channels:
            if kind not in KINDS:
                message = f"unknown channel {kind!r}; known: {', '.join(KINDS)}"
                bad("channels", "known", message, value=kind, choices=list(KINDS))
            elif disabled.get(kind):
                message = f"channel {kind!r} is disabled: {disabled[kind]}"
                bad("channels", "enabled", message, value=kind, reason=disabled[kind])
    if f.keywords is not None and any(not k.strip() or len(k) > KEYWORD_MAX for k in f.keywords):
        message = f"keywords must be non-empty, at most {KEYWORD_MAX} characters"
        bad("keywords", "format", message, limit=KEYWORD_MAX)
    return problems


def channel_text_problems(f: ItemFields) -> list[FieldProblem]:
    """The problems of the per-channel short titles and the WeChat digest: a short title of
    a channel that takes none, control characters, and each beyond its channel's limit
    (WeChat's title ≤ 32 characters, Weibo's as `weibo_text.TITLE_MAX_UNITS` units, the
    digest ≤ 128 characters)."""
    problems: list[FieldProblem] = []
    for kind, value in (f.short_titles or {}).items():
        if kind not in SHORT_TITLE_KINDS:
            message = (
                f"short_titles: {kind!r} takes no short title of its own; "
                f"known: {', '.join(SHORT_TITLE_KINDS)}"
            )
            choices = list(SHORT_TITLE_KINDS)
            problems.append(
                FieldProblem(
                    "short_titles", "known", message, values={"value": kind, "choices": choices}
                )
            )
        elif unsafe_character(value):
            problems.append(
                FieldProblem(
                    f"short_titles.{kind}",
                    "characters",
                    f"short_titles.{kind} {unsafe_characters(value)}",
                    values={"codepoint": unsafe_character(value)},
                )
            )
        elif kind == "wechat" and len(value) > wechat_render.TITLE_MAX:
            limit = wechat_render.TITLE_MAX
            problems.append(
                FieldProblem(
                    "short_titles.wechat",
                    "max_length",
                    f"short_titles.wechat must be at most {limit} characters (WeChat's title)",
                    values={"limit": limit, "length": len(value)},
                )
            )
        elif kind == "weibo" and weibo_units(value) > WEIBO_TITLE_MAX_UNITS:
            limit = WEIBO_TITLE_MAX_UNITS
            problems.append(
                FieldProblem(
                    "short_titles.weibo",
                    "max_units",
                    f"short_titles.weibo must count at most {limit} Weibo units "
                    "(a CJK character 1, an ASCII character 1/2), to show whole beside the link",
                    values={"limit": limit, "length": weibo_units(value)},
                )
            )
    digest = f.wechat_digest
    if digest is not None and len(digest.strip()) > wechat_render.DIGEST_MAX:
        limit = wechat_render.DIGEST_MAX
        problems.append(
            FieldProblem(
                "wechat_digest",
                "max_length",
                f"wechat_digest must be at most {limit} characters (WeChat's digest)",
                values={"limit": limit, "length": len(digest.strip())},
            )
        )
    return problems


_COVER = re.compile(r"/media/[0-9a-f]{64}|https?://[^\s<>\"']{1,990}")


def is_cover_url(text: str) -> bool:
    """An upload's path, or an http(s) URL with a host and a valid port (a port past 65535
    or an unclosed `[` would fail only later, in a worker)."""
    if not _COVER.fullmatch(text):
        return False
    if text.startswith("/"):
        return True
    try:
        parts = urlsplit(text)
        return bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:
        return False


def visible(html: str) -> bool:
    """Whether sanitised HTML has text or an image."""
    return bool(re.sub(r"<(?!img\b)[^>]*>|\s|&nbsp;", "", html))


def hash_fields(rev: Revision, item: Item) -> dict[str, Any]:
    """What the content hash of a revision covers: every field a channel renders."""
    return {
        "title": rev.title,
        "short_title": rev.short_title,
        "summary": rev.summary,
        # Covered only when set, so that a revision written before they existed keeps its
        # hash (and its approvals), and an edit that leaves them empty changes nothing.
        **({"short_titles": rev.short_titles} if rev.short_titles else {}),
        **({"wechat_digest": rev.wechat_digest} if rev.wechat_digest else {}),
        "body_html": rev.body_html,
        "keywords": rev.keywords,
        "doc_number": rev.doc_number,
        "formed_on": rev.formed_on,
        "cover_image": rev.cover_image,
        "domain": item.domain_code,
        "department": item.department_code,
    }


def revision_body(
    f: ItemFields, body: str | None, previous: Revision | None
) -> tuple[str, str | None]:
    if body is not None:
        return body, f.body_markdown
    assert previous is not None
    return previous.body_html, previous.body_markdown


def new_revision(
    item: Item, f: ItemFields, body: str | None, previous: Revision | None, actor: str
) -> Revision:
    """The revision `f` makes of `item` after `previous` (None: the first), with its content
    hash; not added to any session. `body` is the sanitised HTML of the body `f` sets (None:
    unchanged)."""
    body_html, body_markdown = revision_body(f, body, previous)

    def pick(name: str, default: Any) -> Any:
        value = getattr(f, name)
        return value if value is not None else default

    rev = Revision(
        item_id=item.id,
        number=(previous.number + 1) if previous else 1,
        title=pick("title", previous.title if previous else "").strip(),
        short_title=pick("short_title", previous.short_title if previous else None),
        short_titles=merged_short_titles(f.short_titles, previous),
        wechat_digest=kept_digest(f.wechat_digest, previous),
        summary=pick("summary", previous.summary if previous else ""),
        body_html=body_html,
        body_markdown=body_markdown,
        keywords=list(pick("keywords", previous.keywords if previous else [])),
        doc_number=pick("doc_number", previous.doc_number if previous else None),
        formed_on=pick("formed_on", previous.formed_on if previous else None),
        cover_image=pick("cover_image", previous.cover_image if previous else None),
        created_by=actor,
    )
    rev.content_hash = content_hash(hash_fields(rev, item))
    return rev


def kept_digest(given: str | None, previous: Revision | None) -> str | None:
    """The WeChat digest a revision keeps: `given` trimmed (None: the previous one; empty:
    none, cut from the summary when sent)."""
    if given is None:
        return previous.wechat_digest if previous else None
    return given.strip() or None


def merged_short_titles(given: dict[str, str] | None, previous: Revision | None) -> dict[str, str]:
    """The previous revision's short titles with those `given` put over them: an empty one
    (after trimming) clears its channel's."""
    titles = dict(previous.short_titles or {}) if previous else {}
    for kind, value in (given or {}).items():
        if value.strip():
            titles[kind] = value.strip()
        else:
            titles.pop(kind, None)
    return dict(sorted(titles.items()))
