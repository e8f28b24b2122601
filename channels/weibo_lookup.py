"""Finding one of our Weibo posts again: by its id, or (its id lost) on the timeline.

A post whose id we hold is read with `statuses/show` (https://open.weibo.com/wiki/2/statuses/show,
`id`); Weibo answers 20101 "Target weibo does not exist" (https://open.weibo.com/wiki/Error_code)
for a post that is gone. That is the only way a post is declared missing.

A post whose id was lost (a share whose answer never came, or one Weibo answered "repeat
content" or "posted, server slow") can only be searched for on `statuses/user_timeline`
(https://open.weibo.com/wiki/2/statuses/user_timeline), which for the authorised user shows
just the newest few posts. So every share is noted before it is sent (`sending`, in the
shared store) and the note is dropped once the post's id is known or the share is known to
have failed; a lookup searches the timeline only while such a note exists, and not finding the
post there proves nothing: it may have scrolled off. The caller then leaves the outcome
unknown and never posts again blindly. A search spends one to `pages` of the account's 100
calls a day, and the engine retries an unknown delivery every few minutes, so the timeline is
searched at most once an hour for the same unanswered share (`search_due`, across workers),
and so is a recorded post read by its id meanwhile: a delivery that stays unknown costs at most
~24 searches a day while it waits for an operator.

A post read by its id is ours only if it shows our text (links aside, none to another article
of the website) or links to the item's article, and no other item claimed it (`recognised`):
an operator adopting a post by id cannot take another item's post by a slip of the finger.

On the timeline a post is ours when it links to the item's website article (read in its
text, Weibo's expanded-link fields, or behind a short link of a known shortener: t.cn,
sinaurl.cn, a sandbox's own `/t/`), or when it shows our text (links aside) and was made
within minutes of one of our unanswered shares: Weibo shows links as t.cn short links, and a
short link of a host we do not know must not stop the match. With no share unanswered (the
reconciler asking whether a withdrawn item's post came back), only a link match counts.
Government titles repeat ("停水通知"), so a post already claimed by another item, or linking
to another article of the same website, is never taken.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from channels.base import Publication, SharedStore
from channels.errors import ChannelError, Retryable
from channels.weibo_codes import GONE
from channels.weibo_text import LINK

# A post showing our text counts as ours if made this long after one of our unanswered shares
# ("within the last minutes of our own posting"), or up to `CLOCK_SKEW` before it (Weibo's
# clock and ours differ a little).
ADOPT_WINDOW_SECONDS = 600.0
CLOCK_SKEW_SECONDS = 60.0
NOTE_TTL_SECONDS = 30 * 24 * 3600.0
SEARCH_EVERY_SECONDS = 3600.0  # one timeline search an hour per unanswered share
# Weibo's `created_at`, e.g. "Wed Oct 24 23:49:17 +0800 2012" (statuses/share's example).
CREATED_AT = "%a %b %d %H:%M:%S %z %Y"

Call = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Found:
    """A post judged ours; `shows_revision`: its text (links aside) is the one looked for."""

    status: Mapping[str, Any]
    shows_revision: bool


class PostFinder:
    """Reads posts for `WeiboChannel` through its `call` (token, budget and errors are the
    adapter's) and keeps the notes of unanswered shares and claimed posts."""

    def __init__(
        self,
        call: Call,
        shared: SharedStore,
        http: requests.Session,
        *,
        account: str,
        timeout: float,
        short_links: Iterable[str],
        pages: int,
        page_size: int,
    ) -> None:
        self.call = call
        self.shared = shared
        self.http = http
        self.account = account
        self.timeout = timeout
        self.short_links = tuple(short_links)
        self.pages = pages
        self.page_size = page_size
        self._expanded: dict[str, str | None] = {}

    # -- notes in the shared store ----------------------------------------------------------

    def sending(self, pub: Publication, now: float) -> None:
        """Note a share of `pub` about to be sent at `now` (epoch seconds)."""
        self._write_sent(pub, [*self.unanswered(pub), now])

    def failed(self, pub: Publication, stamp: float) -> None:
        """The share noted at `stamp` is known not to have posted anything."""
        self._write_sent(pub, [t for t in self.unanswered(pub) if t != stamp])

    def settled(self, pub: Publication, status_id: str) -> None:
        """`pub`'s post is known (`status_id`): no share of it is unanswered any more, and the
        post is claimed for `pub`, so no other item takes it for its own."""
        self.shared.delete(self._sent_key(pub))
        self.shared.set(self._claim_key(status_id), pub.external_id, NOTE_TTL_SECONDS)

    def unanswered(self, pub: Publication) -> list[float]:
        """When each share of `pub` whose outcome is unknown was sent (epoch seconds)."""
        raw = self.shared.get(self._sent_key(pub))
        try:
            stamps = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [float(t) for t in stamps if isinstance(t, int | float)]

    def search_due(self, pub: Publication, sent: list[float], where: str = "timeline") -> bool:
        """Whether the timeline (or the post whose id is `where`) may be searched now for
        `pub`'s newest unanswered share (sent at `max(sent)`): the first asking in each
        `SEARCH_EVERY_SECONDS` is answered yes, across workers; a search that fails gives its
        turn back (`read`, `searched`), so a busy Weibo does not hold the post for an hour."""
        return self.shared.count(self._search_key(pub, sent, where), SEARCH_EVERY_SECONDS) == 1

    def _search_key(self, pub: Publication, sent: list[float], where: str) -> str:
        return f"weibo:searched:{self.account}:{pub.external_id}:{max(sent):.6f}:{where}"

    def _give_back(self, pub: Publication, sent: list[float], where: str) -> None:
        if sent:
            self.shared.count(self._search_key(pub, sent, where), SEARCH_EVERY_SECONDS, by=-1)

    def read(self, pub: Publication, sent: list[float], status_id: str) -> dict[str, Any] | None:
        """`by_id`, giving the hour's turn back when the read fails."""
        try:
            return self.by_id(status_id)
        except ChannelError:
            self._give_back(pub, sent, status_id)
            raise

    def searched(self, pub: Publication, wanted: set[str], sent: list[float]) -> Found | None:
        """`on_timeline`, giving the hour's turn back when the search fails."""
        try:
            return self.on_timeline(pub, wanted, sent)
        except ChannelError:
            self._give_back(pub, sent, "timeline")
            raise

    def _write_sent(self, pub: Publication, stamps: list[float]) -> None:
        if stamps:
            self.shared.set(self._sent_key(pub), json.dumps(stamps), NOTE_TTL_SECONDS)
        else:
            self.shared.delete(self._sent_key(pub))

    def _sent_key(self, pub: Publication) -> str:
        return f"weibo:unanswered:{self.account}:{pub.external_id}"

    def _claim_key(self, status_id: str) -> str:
        return f"weibo:claimed:{self.account}:{status_id}"

    # -- reading posts ----------------------------------------------------------------------

    def by_id(self, status_id: str) -> dict[str, Any] | None:
        """The post `status_id` (None: Weibo says it does not exist, 20101)."""
        try:
            return self.call("GET", "/2/statuses/show.json", params={"id": status_id})
        except ChannelError as exc:
            if exc.code == str(GONE):
                return None
            raise

    def recognised(
        self, status: Mapping[str, Any], pub: Publication, wanted: set[str]
    ) -> Found | None:
        """`status` (read by its id) as `pub`'s post, or None: it must link to `pub`'s article
        or show one of the `wanted` texts (links aside) without linking to another article of
        the website, and no other item may have claimed it."""
        if self._claimed_by_another(status, pub):
            return None
        shows = without_links(str(status.get("text", ""))) in wanted
        if pub.website_url and pub.website_url in self._links_of(status, resolve=False):
            return Found(status, shows)
        links = self._links_of(status, resolve=True)
        if pub.website_url and pub.website_url in links:
            return Found(status, shows)
        return Found(status, True) if shows and not _elsewhere(links, pub) else None

    def on_timeline(self, pub: Publication, wanted: set[str], sent: list[float]) -> Found | None:
        """`pub`'s post among the newest on the timeline (None: not there, which proves
        nothing). `wanted`: the texts (links aside) the revision may show; `sent`: when our
        unanswered shares went out."""
        by_text: Mapping[str, Any] | None = None
        by_link: Mapping[str, Any] | None = None
        for status in self._timeline():
            if self._claimed_by_another(status, pub):
                continue
            ours_text = without_links(str(status.get("text", ""))) in wanted
            links = self._links_of(status, resolve=ours_text)
            if pub.website_url and pub.website_url in links:
                if ours_text:
                    return Found(status, True)
                by_link = by_link or status
            elif ours_text and not _elsewhere(links, pub) and _made_near(status, sent):
                by_text = by_text or status
        if by_text is not None:
            return Found(by_text, True)
        return None if by_link is None else Found(by_link, False)

    def _claimed_by_another(self, status: Mapping[str, Any], pub: Publication) -> bool:
        claimed = self.shared.get(self._claim_key(idstr(status)))
        return bool(claimed) and claimed != pub.external_id

    def _timeline(self) -> Iterator[dict[str, Any]]:
        for page in range(1, self.pages + 1):
            body = self.call(
                "GET",
                "/2/statuses/user_timeline.json",
                params={"count": self.page_size, "page": page},
            )
            statuses = body.get("statuses") or []
            yield from (s for s in statuses if isinstance(s, dict))
            if len(statuses) < self.page_size:
                return

    def _links_of(self, status: Mapping[str, Any], *, resolve: bool) -> set[str]:
        """Every link of `status`: in its text, in Weibo's expanded-link fields, and (when
        `resolve`) the targets of its known short links. Raises `Retryable` if one of those
        cannot be read."""
        links = set(LINK.findall(str(status.get("text", ""))))
        for entry in status.get("url_struct") or []:
            if isinstance(entry, Mapping):
                for field in ("ori_url", "long_url", "url_long"):
                    value = entry.get(field)
                    if isinstance(value, str) and value:
                        links.add(value)
        if resolve:
            for link in list(links):
                if link.startswith(self.short_links):
                    target = self._expand(link)
                    if target:
                        links.add(target)
        return links

    def _expand(self, short: str) -> str | None:
        """Where a short link redirects (read from its redirect, not followed)."""
        if short not in self._expanded:
            try:
                resp = self.http.head(short, allow_redirects=False, timeout=self.timeout)
            except requests.RequestException as exc:
                raise Retryable(
                    f"weibo: could not read where the short link {short} leads, "
                    "so the post cannot be told apart from another item's",
                    message=type(exc).__name__,
                ) from exc
            self._expanded[short] = resp.headers.get("Location") if resp.is_redirect else None
        return self._expanded[short]


def idstr(status: Mapping[str, Any]) -> str:
    return str(status.get("idstr") or status.get("id") or "")


def without_links(text: str) -> str:
    return " ".join(LINK.sub("", text).split())


def created_at(status: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.strptime(str(status.get("created_at", "")), CREATED_AT)
    except ValueError:
        return None


def _made_near(status: Mapping[str, Any], sent: list[float]) -> bool:
    made = created_at(status)
    if made is None:
        return False
    at = made.timestamp()
    return any(t - CLOCK_SKEW_SECONDS <= at <= t + ADOPT_WINDOW_SECONDS for t in sent)


def _elsewhere(links: set[str], pub: Publication) -> bool:
    """Whether a link of the post leads to another page of the item's website (another
    item's article): links on other hosts may be short links we cannot read, and prove
    nothing."""
    site = urlsplit(pub.website_url or "").netloc.lower()
    return any(urlsplit(link).netloc.lower() == site and link != pub.website_url for link in links)


__all__ = ["Found", "PostFinder", "created_at", "idstr", "without_links"]
