"""The Weibo status: `【标题】摘要 <website article URL>` in ≤ 140 units (docs/protocols.md §6).

Weibo counts a character in the Latin-1 range (ASCII and the like) as half a unit and every
other character (CJK, full-width, 【】, …) as one, and rounds the total up. A link counts as
the t.cn short link Weibo shows in its place, whatever its own length: 20 half units (10
units), and a link over 140 bytes counts its bytes beyond 140 on top (Weibo's composer;
open.weibo.com documents only "不超过140个汉字" on https://open.weibo.com/wiki/2/statuses/share;
the link rule is the one Weibo's clients count by, as WeCase/WeCase src/TweetUtils.py
reproduces it). So the whole article URL never cuts a summary Weibo would accept.

`#…#` in a status becomes a topic, and the share API refuses topics outright ("文本中不能包含
#话题词#", same page): every ASCII "#" of the title and summary is written as the full-width
"＃", which Weibo does not read as a topic mark. Escaping rather than stripping keeps what the
editor wrote legible ("＃3号楼"); the URL is left alone (a fragment is part of the link).

The composer keeps
the link whole and always present; it shortens the summary first (at a sentence end 。！？；
when one is close enough, else at a character), then drops it, then shortens the title, and
marks every cut with "…". A title that would keep fewer than `MIN_TITLE_CHARS` characters is
refused by `preflight` instead: such a stub says nothing to a reader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from channels.base import Problem, Publication

LIMIT_UNITS = 140
MIN_TITLE_CHARS = 10
MIN_SUMMARY_CHARS = 4  # a shorter stub of the summary is dropped rather than shown
ELLIPSIS = "…"
SENTENCE_ENDS = "。！？；"
CORRECTION_PREFIX = "【更正】"
# A sentence cut is preferred only when it keeps at least this share of the room available.
SENTENCE_CUT_MIN_SHARE = 0.5
# A link is made of URL characters (RFC 3986), ASCII only: a CJK character right after it is
# text again, as in Weibo's own count.
LINK = re.compile(r"https?://[A-Za-z0-9\-._~:/?#@!$&*+,;=%]+")
LINK_HALF_UNITS = 20  # a link counts as a t.cn short link …
LONG_LINK_BYTES = 140  # … up to this many bytes; beyond, each further byte counts too
TOPIC_MARK, ESCAPED_TOPIC_MARK = "#", "＃"
# The most a Weibo short title may count: what a status shows whole beside the link, even
# as a correction ("【更正】【title】 link").
TITLE_MAX_UNITS = LIMIT_UNITS - math.ceil(
    (len(CORRECTION_PREFIX + "【】") * 2 + 1 + LINK_HALF_UNITS) / 2
)


class TooLong(ValueError):
    """Even the shortest acceptable status (cut title and link) exceeds the limit."""


def half_units(text: str) -> int:
    """Length in half units: 1 per Latin-1 character, 2 per any other character."""
    return sum(1 if ord(char) <= 0xFF else 2 for char in text)


def link_half_units(url: str) -> int:
    """What one link counts in half units: a short link's 20, plus its bytes beyond 140."""
    size = half_units(url)
    return LINK_HALF_UNITS + max(0, size - LONG_LINK_BYTES)


def status_half_units(text: str) -> int:
    """Weibo's length of `text` in half units, each link counted as `link_half_units`."""
    links = sum(link_half_units(link) for link in LINK.findall(text))
    return links + half_units(LINK.sub("", text))


def units(text: str) -> int:
    """Weibo's length of `text`: CJK/full-width count 1, ASCII ½, a link as a short link,
    rounded up at the end."""
    return math.ceil(status_half_units(text) / 2)


def fits(text: str, limit: int = LIMIT_UNITS) -> bool:
    return status_half_units(text) <= 2 * limit


def without_topics(text: str) -> str:
    """`text` with every "#" written full-width, so Weibo makes no topic of it."""
    return text.replace(TOPIC_MARK, ESCAPED_TOPIC_MARK)


def _take(text: str, room: int) -> str:
    """The longest prefix of `text` whose length in half units is at most `room`."""
    used = 0
    for index, char in enumerate(text):
        used += half_units(char)
        if used > room:
            return text[:index]
    return text


def _shorten(text: str, room: int) -> str:
    """`text` cut to `room` half units including the closing "…" (sentence end preferred)."""
    if half_units(text) <= room:
        return text
    prefix = _take(text, room - half_units(ELLIPSIS))
    sentence_end = max(prefix.rfind(mark) for mark in SENTENCE_ENDS)
    if sentence_end > 0 and half_units(prefix[:sentence_end]) >= SENTENCE_CUT_MIN_SHARE * room:
        # The sentence's own end mark gives way to "…": the reader sees that more follows.
        prefix = prefix[:sentence_end]
    return prefix.rstrip() + ELLIPSIS


def compose_status(
    title: str, summary: str, url: str, *, prefix: str = "", limit: int = LIMIT_UNITS
) -> str:
    """`{prefix}【title】summary url` within `limit` units; raises `TooLong` if it cannot fit."""
    title, summary = without_topics(title.strip()), without_topics(" ".join(summary.split()))
    tail = f" {url}"
    full = f"{prefix}【{title}】{summary}{tail}"
    if fits(full, limit):
        return full
    room = 2 * limit - status_half_units(f"{prefix}【{title}】{tail}")
    short_summary = _shorten(summary, room) if summary and room > 0 else ""
    if len(short_summary) - len(ELLIPSIS) >= MIN_SUMMARY_CHARS:
        return f"{prefix}【{title}】{short_summary}{tail}"
    if fits(f"{prefix}【{title}】{tail}", limit):
        return f"{prefix}【{title}】{tail}"
    title_room = 2 * limit - status_half_units(f"{prefix}【】{tail}")
    short_title = _shorten(title, title_room)
    if title_room <= 0 or len(short_title) - len(ELLIPSIS) < MIN_TITLE_CHARS:
        raise TooLong(f"【标题】与链接合计超过 {limit} 字，标题只能保留不足 {MIN_TITLE_CHARS} 个字")
    return f"{prefix}【{short_title}】{tail}"


def status_for(pub: Publication, *, correction: bool = False) -> str:
    """The status text for `pub` (a correction notice when `correction`). Raises `TooLong`."""
    if not pub.website_url:
        raise ValueError("the website article URL is not known yet")
    title = pub.title_for("weibo")
    prefix = CORRECTION_PREFIX if correction else ""
    return compose_status(title, pub.summary, pub.website_url, prefix=prefix)


def host_is_safe(url: str, safe_domains: Iterable[str]) -> bool:
    """Whether `url`'s host is one of `safe_domains` or below one of them."""
    host = (urlsplit(url).hostname or "").lower()
    for domain in safe_domains:
        domain = domain.strip().lower().lstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def preflight(pub: Publication, safe_domains: Iterable[str] = ()) -> list[Problem]:
    """What Weibo would refuse in `pub`. An empty `safe_domains` trusts the URL's own host."""
    url = pub.website_url
    if not url:
        return [
            Problem("weibo", "website_url", "required", "微博须附网站文章链接，网站页面尚未生成")
        ]
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        return [Problem("weibo", "website_url", "url", f"网站文章链接无效：{url}", {"url": url})]
    domains = list(safe_domains)
    if domains and not host_is_safe(url, domains):
        return [
            Problem(
                "weibo",
                "website_url",
                "safe_domain",
                f"链接 {url} 不在微博应用的安全域名（{'、'.join(domains)}）内",
                {"url": url, "domains": domains},
            )
        ]
    try:
        status_for(pub)
    except TooLong as exc:
        return [
            Problem(
                "weibo",
                "title",
                "max_units",
                str(exc),
                {"limit": LIMIT_UNITS, "min_chars": MIN_TITLE_CHARS},
            )
        ]
    return []
