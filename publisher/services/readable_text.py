"""What a reader sees of a field, and where each character of it lies in the stored string.

Checks run on what is read, but report and mask positions in what is stored. A plain field
(title, summary, …) is read as it is. An HTML body is read as its text nodes plus the text
of `alt` and `title` attributes (shown to readers too), entities decoded. Inline elements
(`b`, `span`, `a`, …) join the text on either side, so `138<b>0013</b>8000` reads as one
number; any other tag (`p`, `td`, `br`, `li`, …) separates, as it does on the page, so two
table cells never read as one number. URLs (`href`, `src`) are read too, entities and
percent-escapes decoded, each apart from the text around it; `url_spans` says where they lie,
so that checks can leave them out (sensitive words, bank cards: timestamps and ids in URLs).

Every text is read as the checks need it, so that what a reader cannot see does not hide what
they can: format characters (category Cf: zero-width space, soft hyphen, word joiner, BOM, …)
and other default-ignorable characters (variation selectors, Hangul fillers) are dropped, and
every decimal digit (category Nd: full-width, mathematical bold, Arabic-Indic, …) reads as its
ASCII digit.

A match in the readable text maps back to [start, end) of the stored string, which may
enclose inline tags or dropped characters; masking replaces only characters that are text (or
part of an attribute value that is read), so tags and attribute syntax are never touched.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

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
_READ_ATTRIBUTES = re.compile(
    r"""\s(alt|title|href|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.I
)
_URL_ATTRIBUTES = frozenset({"href", "src"})
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Characters other than ASCII, CJK ideographs and CJK punctuation (none of those is a format
# character or a non-ASCII digit): only these are looked at one by one.
_UNUSUAL = re.compile(r"[^\x00-\x7f\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff]")
# Default-ignorable code points outside category Cf: invisible too.
_IGNORABLE = re.compile(
    r"[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0"
    r"\U000e0100-\U000e01ef]"
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")


@dataclass(frozen=True)
class ReadableText:
    """`text` as read, and for its character i the span [starts[i], ends[i]) of `stored`
    it comes from (`starts` is None when the text is the stored string itself)."""

    stored: str
    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None
    url_spans: tuple[tuple[int, int], ...] = ()  # [start, end) of URLs in `stored`

    def in_url(self, start: int, end: int) -> bool:
        """Whether [start, end) of the readable text was read from a URL (`href`, `src`)."""
        if not self.url_spans or start >= end:
            return False
        at = self.stored_span(start, end)[0]
        return any(a <= at < b for a, b in self.url_spans)

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


@lru_cache(maxsize=4096)
def _read_as(char: str) -> str | None:
    """What a character outside ASCII and CJK reads as: "" (invisible), an ASCII digit, or
    None (itself)."""
    if unicodedata.category(char) == "Cf" or _IGNORABLE.match(char):
        return ""
    value = unicodedata.decimal(char, None)
    return None if value is None else str(value)


def _read(
    stored: str,
    chars: str,
    starts: list[int] | None = None,
    ends: list[int] | None = None,
    url_spans: tuple[tuple[int, int], ...] = (),
) -> ReadableText:
    """`chars` (mapped to `stored` by `starts`/`ends`, or `stored` itself) with invisible
    characters dropped and digits as ASCII, still mapped to `stored`."""
    changes = [
        (m.start(), read)
        for m in _UNUSUAL.finditer(chars)
        if (read := _read_as(m.group(0))) is not None
    ]
    if not changes and starts is None:
        return ReadableText(stored, chars)
    if starts is None or ends is None:
        starts, ends = list(range(len(chars))), list(range(1, len(chars) + 1))
    if not changes:
        return ReadableText(stored, chars, tuple(starts), tuple(ends), url_spans)
    out: list[str] = []
    out_starts: list[int] = []
    out_ends: list[int] = []
    at = 0
    for position, read in changes:
        out.append(chars[at:position])
        out_starts += starts[at:position]
        out_ends += ends[at:position]
        if read:
            out.append(read)
            out_starts.append(starts[position])
            out_ends.append(ends[position])
        at = position + 1
    out.append(chars[at:])
    out_starts += starts[at:]
    out_ends += ends[at:]
    return ReadableText(stored, "".join(out), tuple(out_starts), tuple(out_ends), url_spans)


def plain_text(stored: str) -> ReadableText:
    return _read(stored, stored)


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

    def percent_decoded(since: int) -> None:
        """Decode the %-escapes read since index `since` (UTF-8; a broken one stays)."""
        read = "".join(chars[since:])
        if "%" not in read:
            return
        out: list[str] = []
        out_starts: list[int] = []
        out_ends: list[int] = []
        at = 0
        while at < len(read):
            escape = _PERCENT.match(read, at)
            if escape is None:
                out.append(read[at])
                out_starts.append(starts[since + at])
                out_ends.append(ends[since + at])
                at += 1
                continue
            first = int(read[at + 1 : at + 3], 16)
            size = 1 if first < 0x80 else 2 if first < 0xE0 else 3 if first < 0xF0 else 4
            escapes = list(_PERCENT.finditer(read[at : at + 3 * size]))
            try:
                if len(escapes) != size or escapes[-1].end() != 3 * size:
                    raise ValueError
                decoded = bytes(int(e.group(0)[1:], 16) for e in escapes).decode()
            except ValueError:
                decoded, size = read[at], 0
            out.append(decoded)
            out_starts.append(starts[since + at])
            out_ends.append(ends[since + at + max(3 * size, 1) - 1])
            at += max(3 * size, 1)
        chars[since:] = out
        starts[since:] = out_starts
        ends[since:] = out_ends

    def separate(at: int) -> None:
        if chars and chars[-1] != BREAK:
            chars.append(BREAK)
            starts.append(at)
            ends.append(at)

    url_spans: list[tuple[int, int]] = []
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
            group = next(g for g in (2, 3, 4) if attribute.group(g) is not None)
            separate(tag.start())
            since = len(chars)
            text(attribute.start(group), attribute.end(group))
            if attribute.group(1).lower() in _URL_ATTRIBUTES:
                percent_decoded(since)
                url_spans.append((attribute.start(group), attribute.end(group)))
            separate(tag.start())
    text(at, len(stored))
    return _read(stored, "".join(chars), starts, ends, tuple(url_spans))
