"""What a reader sees of a field, and where each character of it lies in the stored string.

Checks run on what is read, but report and mask positions in what is stored. A plain field
(title, summary, …) is read as it is. An HTML body is read as its text nodes plus the text
of `alt` and `title` attributes (shown to readers too), entities decoded. Inline elements
(`b`, `span`, `a`, …) join the text on either side, so `138<b>0013</b>8000` reads as one
number; any other tag (`p`, `td`, `br`, `li`, …) separates, as it does on the page, so two
table cells never read as one number. URLs (`href`, `src`) are not read.

A match in the readable text maps back to [start, end) of the stored string, which may
enclose inline tags; masking replaces only characters that are text, so tags and attribute
syntax are never touched.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Stands between text that readers see apart (another cell, paragraph, attribute): no
# pattern of the checks crosses it.
BREAK = "\n"

INLINE_TAGS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "font", "i"}
    | {"ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time"}
    | {"u", "var"}
)
_TAG = re.compile(
    r"<!--.*?-->|<[/!?]?[A-Za-z][^>\"']*(?:(?:\"[^\"]*\"|'[^']*')[^>\"']*)*>", re.DOTALL
)
_TAG_NAME = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_READ_ATTRIBUTES = re.compile(r"""\s(?:alt|title)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")


@dataclass(frozen=True)
class ReadableText:
    """`text` as read, and for its character i the span [starts[i], ends[i]) of `stored`
    it comes from (`starts` is None when the text is the stored string itself)."""

    stored: str
    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def stored_span(self, start: int, end: int) -> tuple[int, int]:
        """[start, end) of the readable text as a span of the stored string."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]

    def masked(self, positions: Iterable[int], char: str = "*") -> str:
        """The stored string with the characters read at `positions` replaced by `char`
        (an entity such as `&#49;` becomes one `char`)."""
        spans = sorted({self._char_span(p) for p in positions})
        out, at = [], 0
        for start, end in spans:
            out += [self.stored[at:start], char]
            at = end
        out.append(self.stored[at:])
        return "".join(out)

    def _char_span(self, position: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None:
            return position, position + 1
        return self.starts[position], self.ends[position]


def plain_text(stored: str) -> ReadableText:
    return ReadableText(stored, stored)


def html_text(stored: str) -> ReadableText:
    """The readable text of an HTML fragment, each character mapped to the stored HTML."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def literal(start: int, end: int) -> None:
        chars.extend(stored[start:end])
        starts.extend(range(start, end))
        ends.extend(range(start + 1, end + 1))

    def text(start: int, end: int) -> None:
        at = start
        for entity in _ENTITY.finditer(stored, start, end):
            literal(at, entity.start())
            decoded = html.unescape(entity.group(0))
            if decoded == entity.group(0):  # an ampersand, not an entity
                literal(entity.start(), entity.end())
            else:
                chars.extend(decoded)
                starts.extend([entity.start()] * len(decoded))
                ends.extend([entity.end()] * len(decoded))
            at = entity.end()
        literal(at, end)

    def separate(at: int) -> None:
        if chars and chars[-1] != BREAK:
            chars.append(BREAK)
            starts.append(at)
            ends.append(at)

    at = 0
    for tag in _TAG.finditer(stored):
        text(at, tag.start())
        at = tag.end()
        name = _TAG_NAME.match(tag.group(0))
        if name is None:  # a comment or declaration: not read, not a break
            continue
        if name.group(2).lower() not in INLINE_TAGS:
            separate(tag.start())
        if name.group(1):  # a closing tag has no attributes
            continue
        for attribute in _READ_ATTRIBUTES.finditer(stored, tag.start(), tag.end()):
            group = 1 if attribute.group(1) is not None else 2
            separate(tag.start())
            text(attribute.start(group), attribute.end(group))
            separate(tag.start())
    text(at, len(stored))
    return ReadableText(stored, "".join(chars), tuple(starts), tuple(ends))
