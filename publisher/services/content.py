"""Item content: Markdown to HTML, HTML sanitising, and the revision content hash.

Python-Markdown takes time quadratic in some inputs (8,000 `[` took 6.5 s a render, and it
rendered twice per create; `<a ` and `[a](` runs too), and the sanitiser in the depth of what it
builds, which no limit on the shape of the input provably bounds; so Markdown, and HTML of
many tags, are worked on in a child process that is killed at a deadline (`in_child`): some
60 ms for a bound that holds whatever the input. `python -m publisher.services.content
markdown|sanitize` does that work on stdin.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from datetime import date
from typing import Any

import markdown as md
import nh3

log = logging.getLogger(__name__)

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "section",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "col": {"span"},
    "*": {"class"},
}


def sanitize_html(html: str) -> str:
    """Keep document structure; drop scripts, event handlers, styles and `javascript:` URLs."""
    cleaned: str = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return cleaned.strip()


class RenderFailed(Exception):
    """A body did not render: past its deadline, or its child process failed."""


def markdown_to_html(text: str) -> str:
    return str(md.markdown(text, extensions=["tables", "sane_lists"], output_format="html"))


CHILD_WORK = {"markdown": markdown_to_html, "sanitize": sanitize_html}


def in_child(work: str, text: str, *, deadline_seconds: float) -> str:
    """`CHILD_WORK[work](text)` in a child process. Raises `RenderFailed` when it runs past
    the deadline (the child is killed) or fails (its error is logged)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__, work],
            input=text.encode(),
            capture_output=True,
            timeout=deadline_seconds,
            check=True,
        )
    except subprocess.TimeoutExpired:
        raise RenderFailed(f"took longer than {deadline_seconds:g} s to render") from None
    except subprocess.CalledProcessError as exc:
        log.warning("%s failed: %s", work, exc.stderr.decode(errors="replace")[-2000:])
        raise RenderFailed("could not be rendered") from None
    return done.stdout.decode()


def content_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every field a channel renders."""

    def default(value: Any) -> Any:
        if isinstance(value, date):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    canonical = json.dumps(fields, ensure_ascii=False, sort_keys=True, default=default)
    return hashlib.sha256(canonical.encode()).hexdigest()


if __name__ == "__main__":
    work = CHILD_WORK[sys.argv[1]]
    sys.stdout.buffer.write(work(sys.stdin.buffer.read().decode()).encode())
