"""Bounded work per request (issue 12): how long and how many, for every text and list a
caller sends, and the checks of an item's fields that the API and the CLI share.

The limits are far above what a real disclosure item needs (a 文号 is some twenty characters,
an item has a handful of 主题词) and low enough that no field makes a request expensive.
Titles, short titles and names refuse C0 controls (NUL included), DEL and the bidirectional
overrides and isolates (U+202A–U+202E, U+2066–U+2069), which make a title read differently
from what is stored. Bodies are measured before the sanitiser runs (`render_body`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from publisher.config import Settings
from publisher.errors import FieldProblem
from publisher.services.content import RenderFailed, in_child, sanitize_html
from publisher.services.html_depth import ForeignContent, measure_html

TITLE_MAX = 200
SHORT_TITLE_MAX = 64
DOC_NUMBER_MAX = 64
SUMMARY_MAX = 1000
KEYWORDS_MAX = 50
KEYWORD_MAX = 32
PUSH_TAGS_MAX = 100
PUSH_TAG_MAX = 64
CHANNELS_MAX = 16
REASON_MAX = 2000  # reasons and comments: retract, cancel, pause, freeze, approve, send back
NAME_MAX = 100  # names of domains and departments
CODE_MAX = 64  # codes of domains, departments, channels; filter values
CODES_MAX = 200  # lists of codes: a domain's departments, a user's
URL_MAX = 2000
REMOTE_ID_MAX = 200  # a post's id on a channel (deliveries.remote_id)
TOKEN_MAX = 4096
WORD_MAX = 100  # a sensitive word
# Database ids are signed 64-bit integers in SQLite and PostgreSQL.
ID_MAX = 2**63 - 1
OFFSET_MAX = 1_000_000  # deeper pages: narrow the filters instead
# HTML of at most this many start tags is sanitised in process: the worst found at that size
# (formatting elements reopened in every paragraph) takes the sanitiser 0.05 s, at 5,000 tags
# 1.5 s (README, Security); more goes to a child process with the deadline.
SANITISE_IN_PROCESS_TAGS = 1000

_UNSAFE = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def unsafe_character(text: str) -> str | None:
    """The first control or bidi character in `text` as `U+XXXX`, else None."""
    found = _UNSAFE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def unsafe_characters(text: str) -> str | None:
    """A message naming the first control or bidi character in `text`, else None."""
    codepoint = unsafe_character(text)
    if codepoint is None:
        return None
    return f"must not contain {codepoint} (control or bidi override)"


def item_field_problems(fields: Mapping[str, Any]) -> list[FieldProblem]:
    """Lengths, counts and characters of an item's fields, by name (None: unchanged, not
    checked)."""
    problems = []
    for name in ("title", "short_title", "doc_number"):
        value = fields.get(name)
        message = unsafe_characters(value) if value is not None else None
        if value is not None and message:
            problems.append(
                FieldProblem(
                    name,
                    "characters",
                    f"{name} {message}",
                    values={"codepoint": unsafe_character(value)},
                )
            )
    for name, most, longest in (
        ("keywords", KEYWORDS_MAX, KEYWORD_MAX),
        ("push", PUSH_TAGS_MAX, PUSH_TAG_MAX),
        ("channels", CHANNELS_MAX, CODE_MAX),
    ):
        values = fields.get(name)
        if values is not None and len(values) > most:
            problems.append(
                FieldProblem(
                    name, "max_items", f"{name}: at most {most} entries", values={"limit": most}
                )
            )
        elif values is not None and any(len(v) > longest for v in values):
            problems.append(
                FieldProblem(
                    name,
                    "max_length",
                    f"{name}: each at most {longest} characters",
                    values={"limit": longest},
                )
            )
    return problems


def render_body(
    settings: Settings, body_html: str | None, body_markdown: str | None
) -> tuple[str | None, list[FieldProblem]]:
    """The sanitised HTML of the body given (None when none is, or both), rendered once per
    create or edit; or the problems that refuse it: too many bytes, too slow to render,
    elements nested deeper than `settings.max_html_depth`, SVG or MathML."""
    if body_markdown is not None and body_html is None:
        name, text = "body_markdown", body_markdown
    elif body_html is not None and body_markdown is None:
        name, text = "body_html", body_html
    else:
        return None, []
    if len(text.encode()) > settings.max_body_bytes:
        message = f"{name} must be at most {settings.max_body_bytes} bytes"
        too_big = FieldProblem(
            name, "max_bytes", message, values={"limit": settings.max_body_bytes}
        )
        return None, [too_big]
    deadline = settings.body_render_seconds
    try:
        html = in_child("markdown", text, deadline_seconds=deadline) if body_markdown else text
        shape = measure_html(html, settings.max_html_depth)
        if shape.depth > settings.max_html_depth:
            message = f"{name} nests elements more than {settings.max_html_depth} deep"
            limit = settings.max_html_depth
            return None, [FieldProblem(name, "max_depth", message, values={"limit": limit})]
        if shape.tags <= SANITISE_IN_PROCESS_TAGS:
            return sanitize_html(html), []
        return in_child("sanitize", html, deadline_seconds=deadline), []
    except RenderFailed as exc:
        message = f"{name} {exc}: shorten or simplify it"
        slow = FieldProblem(name, "render_time", message, values={"seconds": f"{deadline:g}"})
        return None, [slow]
    except ForeignContent as exc:
        message = f"{name} must not contain <{exc}> (SVG and MathML are removed anyway)"
        return None, [FieldProblem(name, "foreign_content", message, values={"tag": str(exc)})]
