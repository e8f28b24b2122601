"""How deeply HTML nests, measured before the sanitiser builds its tree (issue 12).

The sanitiser (nh3, on html5ever) takes time quadratic in the depth of the tree it builds: 500 KB
of nested `<div>` took 28 s. So the depth is measured first, by a tokenizer that follows the
HTML tokenizer's states where they decide what is a tag (comments, quoted attribute values,
raw text such as `<script>`) and moves only forward: linear in the input, whatever it is. The
standard library's `html.parser` is not: on Python 3.11.7, 20 KB of `<a ` took 3.1 s and `<![`
raised an AssertionError; html5lib's tokenizer took 429 s on 1 MB of `<a ` (README, Security).

The depth counts what a browser would keep open, erring on the deep side, never the shallow:
void elements never open, nor do parts of a table outside one; an end tag closes back to its
element only where the tree builder would (not past a table cell or caption, and `</span>` and
its kin not past any of the "special" elements, `<div>`, `<ul>`…); `<p>`, `<li>`, `<td>` and
their kin close a sibling left open just before them; and every formatting element (`<b>`, `<a>`,
`<font>`…) counts from its start tag to its own end tag, since the tree builder reopens it
inside each block that follows.

SVG and MathML are refused (`ForeignContent`): inside them other rules decide what is raw text,
CDATA or a tag, and the sanitiser removes them anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


VOID = _names("area base br col embed hr img input keygen link meta param source track wbr")
FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
# Elements whose content is text up to their end tag (noscript: html5ever runs with scripting).
RAW_TEXT = _names("script style xmp iframe noembed noframes noscript textarea title")
FOREIGN = _names("svg math")
# The tree builder's "special" elements: an end tag of any other name (`</span>`) does not
# close past one of them.
SPECIAL = _names(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form "
    "frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link "
    "listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre "
    "script search section select source style summary table tbody td template textarea tfoot th "
    "thead title tr track ul wbr xmp"
)
# The end tag of a special element does not close past these (its "scope").
SCOPE = _names("td th caption table template applet object marquee")
TABLE_PARTS = _names("caption col colgroup tbody thead tfoot tr td th")
# Outside a table (or template), the tree builder ignores start and end tags of its parts.
TABLES = _names("table template")
_BLOCKS = _names(
    "address article aside blockquote div dl figure footer h1 h2 h3 h4 h5 h6 header hr "
    "main nav ol p pre section table ul"
)
# A start tag closes these when one of them is the element open last.
_CLOSES: dict[str, frozenset[str]] = {tag: frozenset({"p"}) for tag in _BLOCKS}
_CLOSES |= {
    "li": frozenset({"li", "p"}),
    "dt": frozenset({"dt", "dd", "p"}),
    "dd": frozenset({"dt", "dd", "p"}),
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "tr": frozenset({"td", "th", "tr"}),
    "tbody": frozenset({"td", "th", "tr", "tbody", "thead", "tfoot"}),
    "thead": frozenset({"td", "th", "tr", "tbody", "thead", "tfoot"}),
    "tfoot": frozenset({"td", "th", "tr", "tbody", "thead", "tfoot"}),
    "option": frozenset({"option"}),
}

_MARKUP = re.compile(r"<[A-Za-z/!?]")  # a `<` before anything else is text
_TAG = re.compile(r"<(/?)([A-Za-z][^\t\n\f\r />]*)")
_SPACE = re.compile(r"[\t\n\f\r /]*")
_BLANK = re.compile(r"[\t\n\f\r ]*")
_ATTR_NAME = re.compile(r"[^\t\n\f\r />][^\t\n\f\r />=]*")
_UNQUOTED = re.compile(r"[^\t\n\f\r >]*")
_COMMENT_END = re.compile(r"--!?>")


class ForeignContent(Exception):
    """The HTML has an `<svg>` or `<math>` element (its name is the argument)."""


@dataclass(frozen=True)
class HtmlShape:
    depth: int
    tags: int  # start tags, void ones included


def measure_html(html: str, limit: int) -> HtmlShape:
    """The deepest nesting found, counted up to `limit + 1` (the scan stops there), and the
    start tags seen. Raises `ForeignContent`."""
    counter = _DepthCounter()
    position = 0
    while position < len(html) and counter.deepest <= limit:
        position = counter.step(html, position)
    return HtmlShape(counter.deepest, counter.tags)


class _DepthCounter:
    def __init__(self) -> None:
        self.stack: list[str] = []
        self.formatting: list[str] = []
        self.deepest = 0
        self.tags = 0

    def step(self, html: str, at: int) -> int:
        """Read the construct that starts at or after `at`; the position after it
        (len(html) when the rest is text, a comment or a tag left unclosed)."""
        found = _MARKUP.search(html, at)
        if found is None:
            return len(html)
        start = found.start()
        tag = _TAG.match(html, start)
        if tag is None:
            return self._markup(html, start)
        end = _tag_end(html, tag.end())
        if end < 0:
            return len(html)
        name = tag.group(2).lower()
        if tag.group(1):
            self._close(name)
            return end
        self._open(name)
        if name == "plaintext":
            return len(html)
        if name in RAW_TEXT:
            close = re.compile(rf"</{re.escape(name)}[\t\n\f\r />]", re.IGNORECASE)
            found = close.search(html, end)
            return found.start() if found else len(html)
        return end

    def _markup(self, html: str, start: int) -> int:
        """Comments and other markup that is not a tag: where what starts at `start` ends."""
        rest = html.startswith
        if rest("<!--", start):
            if rest("<!-->", start) or rest("<!--->", start):
                return html.index(">", start + 4) + 1
            found = _COMMENT_END.search(html, start + 4)
            return found.end() if found else len(html)
        # Anything else is a bogus comment: `<!…>` (CDATA too, outside SVG and MathML), `<?…>`,
        # `</` not before a letter.
        close = html.find(">", start + 2)
        return close + 1 if close >= 0 else len(html)

    def _open(self, name: str) -> None:
        self.tags += 1
        if name in FOREIGN:
            raise ForeignContent(name)
        if name in VOID or (name in TABLE_PARTS and not TABLES.intersection(self.stack)):
            return
        if name in FORMATTING:
            self.formatting.append(name)
        else:
            closes = _CLOSES.get(name, frozenset())
            while self.stack and self.stack[-1] in closes:
                self.stack.pop()
            self.stack.append(name)
        self.deepest = max(self.deepest, len(self.stack) + len(self.formatting))

    def _close(self, name: str) -> None:
        if name in FORMATTING:
            if name in self.formatting:
                del self.formatting[len(self.formatting) - 1 - self.formatting[::-1].index(name)]
            return
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] == name:
                del self.stack[index:]
                return
            if self.stack[index] in _barriers(name):
                return


def _barriers(name: str) -> frozenset[str]:
    """What the end tag `name` does not close past."""
    if name in _END_SCOPES:
        return _END_SCOPES[name]
    if name in TABLE_PARTS:
        return TABLES
    return SCOPE if name in SPECIAL else SPECIAL


_END_SCOPES = {
    "table": frozenset({"template"}),
    "li": SCOPE | {"ol", "ul"},
    "p": SCOPE | {"button"},
}


def _tag_end(html: str, at: int) -> int:
    """The position after the `>` of the tag whose name ends at `at`, skipping its
    attributes as the HTML tokenizer does (quotes count only around a value); -1 when the
    input ends inside the tag."""
    while True:
        at = _SPACE.match(html, at).end()  # type: ignore[union-attr]
        if at >= len(html):
            return -1
        if html[at] == ">":
            return at + 1
        at = _ATTR_NAME.match(html, at).end()  # type: ignore[union-attr]
        at = _BLANK.match(html, at).end()  # type: ignore[union-attr]
        if at < len(html) and html[at] == "=":
            at = _BLANK.match(html, at + 1).end()  # type: ignore[union-attr]
            if at < len(html) and html[at] in "\"'":
                close = html.find(html[at], at + 1)
                if close < 0:
                    return -1
                at = close + 1
            else:
                at = _UNQUOTED.match(html, at).end()  # type: ignore[union-attr]
