"""Finding one of our Weibo posts again: by its id, or (its id lost) on the timeline.

A post whose id we hold is read with `statuses/show` (https://open.weibo.com/wiki/2/statuses/show,
`id`); Weibo answers 20101 "Target weibo does not exist" (https://open.weibo.com/wiki/Error_code)
for a post that is gone.

A post whose id was lost (a share whose answer never came, or one Weibo answered "repeat
content" or "posted, server slow") can only be searched for on `statuses/user_timeline`
(https://open.weibo.com/wiki/2/statuses/user_timeline), which for the authorised user shows
just the newest few posts, newest first. So every share is noted before it is sent (`sending`,
in the shared store) and the note is dropped once the post's id is known or the share is known
to have failed; a lookup searches the timeline only while such a note exists. A search reports
what it found and how far back the posts it read reach (`Timeline.oldest`). Not finding the
post proves nothing when they do not reach back to before the share: it may have scrolled
off, and the caller leaves the outcome unknown and never posts again blindly. When they do,
and the share is older than the time Weibo may take to show a post, the post was never made
(`WeiboChannel.lookup` decides; `absent` drops the note) — unless Weibo said it was posted
(20032) or is a repeat of one there (20019/20111): such shares are noted apart (`said_posted`)
and never taken for absent.

A search spends one to `pages` of the account's 100 calls a day, and the engine retries an
unknown delivery every few minutes, so the timeline is searched at most once an hour for the
same unanswered share (`search_due`, across workers), and so is a recorded post read by its id
meanwhile: a delivery that stays unknown costs at most ~24 searches a day while it waits for an
operator. While Weibo may still be showing a share, one early search is allowed (its own turn,
`early`), since no search could conclude before then.

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
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from channels.base import Publication, SharedStore
from channels.budgets import BEIJING
from channels.errors import ChannelError, OutcomeUnknown, Retryable
from channels.weibo_codes import GONE
from channels.weibo_text import LINK

# A post showing our text counts as ours if made this long after one of our unanswered shares
# ("within the last minutes of our own posting"), or up to `CLOCK_SKEW` before it (Weibo's
# clock and ours differ a little).
ADOPT_WINDOW_SECONDS = 600.0
CLOCK_SKEW_SECONDS = 60.0
NOTE_TTL_SECONDS = 30 * 24 * 3600.0
SEARCH_EVERY_SECONDS = 3600.0  # one timeline search an hour per unanswered share
TIMELINE = "timeline"  # the hourly turn of a timeline search
EARLY = "early"  # the one search while Weibo may still be showing a share
# Weibo's `created_at`, e.g. "Wed Oct 24 23:49:17 +0800 2012" (statuses/share's example).
CREATED_AT = "%a %b %d %H:%M:%S %z %Y"
# The delivery's remote state keeps the notes too (the shared store may be flushed).
UNANSWERED = "unanswered"  # when shares whose answer was lost were sent
SAID_POSTED = "posted"  # when shares Weibo said were posted (20032) or repeats were sent
ASK_AN_OPERATOR = "（管理员可按微博 ID 认领，或标记为已发布）"
NOT_FOUND = (
    "weibo: 发出的微博未收到应答，账号时间线上最新的微博中也没有它"
    "（可能已被新微博挤出）；暂不重发，每小时再查找一次" + ASK_AN_OPERATOR
)
NOT_FOUND_SAID_POSTED = (
    "weibo: 微博曾答复该微博已发布（或已有相同内容），但账号时间线上找不到它；"
    "暂不重发，每小时再查找一次" + ASK_AN_OPERATOR
)
SEARCHED_WITHIN_THE_HOUR = (
    "weibo: 发出的微博结果未知，一小时内已在时间线上查找过、未找到；"
    "为节省每日 API 调用次数，每小时最多查找一次，暂不重发" + ASK_AN_OPERATOR
)

Call = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Found:
    """A post judged ours; `shows_revision`: its text (links aside) is the one looked for."""

    status: Mapping[str, Any]
    shows_revision: bool


@dataclass(frozen=True)
class Notes:
    """A publication's shares whose answer was lost (`sent`), and those Weibo said were
    posted or repeats (`posted`): when each was sent, epoch seconds, oldest first."""

    sent: tuple[float, ...]
    posted: tuple[float, ...]

    def state(self) -> dict[str, Any]:
        """The notes as kept in the delivery's remote state."""
        return {UNANSWERED: list(self.sent), SAID_POSTED: list(self.posted)}


@dataclass(frozen=True)
class Timeline:
    """What a timeline search saw: `found`, the post judged ours (None: not among the posts
    read), and `oldest`, when the oldest post read was made (epoch seconds; None: no post
    read, or none saying when it was made)."""

    found: Found | None
    oldest: float | None

    def reaches_back_to(self, moment: float) -> bool:
        """Whether the posts read reach back to `moment`: any post made since then that the
        timeline shows was among them."""
        return self.oldest is not None and self.oldest <= moment


class PostFinder:
    """Reads posts for `WeiboChannel` through its `call` (token, budget and errors are the
    adapter's), keeps the notes of unanswered shares and claimed posts, and judges whether a
    lost share made a post (`lost_post`); `slow_seconds`: how late Weibo may show a post."""

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
        slow_seconds: float,
    ) -> None:
        self.call = call
        self.shared = shared
        self.http = http
        self.account = account
        self.timeout = timeout
        self.short_links = tuple(short_links)
        self.pages = pages
        self.page_size = page_size
        self.slow_seconds = slow_seconds
        self._expanded: dict[str, str | None] = {}

    # -- notes in the shared store ----------------------------------------------------------

    def sending(self, pub: Publication, now: float) -> None:
        """Note a share of `pub` about to be sent at `now` (epoch seconds)."""
        self._write_sent(pub, [*self.unanswered(pub), now])

    def failed(self, pub: Publication, stamp: float) -> None:
        """The share noted at `stamp` is known not to have posted anything."""
        self._write_sent(pub, [t for t in self.unanswered(pub) if t != stamp])

    def said_posted(self, pub: Publication, stamp: float) -> None:
        """Weibo said the share noted at `stamp` was posted (20032), or that a post with its
        text is there (20019/20111): it is never taken for absent."""
        stamps = [*self.posted(pub), stamp]
        self.shared.set(self._posted_key(pub), json.dumps(stamps), NOTE_TTL_SECONDS)

    def absent(self, pub: Publication) -> None:
        """No unanswered share of `pub` made a post (the timeline read reaches back before
        them all): the next share is the only one."""
        self.shared.delete(self._sent_key(pub))

    def settled(self, pub: Publication, status_id: str) -> None:
        """`pub`'s post is known (`status_id`): no share of it is unanswered any more, and the
        post is claimed for `pub`, so no other item takes it for its own."""
        self.shared.delete(self._sent_key(pub))
        self.shared.delete(self._posted_key(pub))
        self.shared.set(self._claim_key(status_id), pub.external_id, NOTE_TTL_SECONDS)

    def unanswered(self, pub: Publication) -> list[float]:
        """When each share of `pub` whose outcome is unknown was sent (epoch seconds)."""
        return self._stamps(self._sent_key(pub))

    def posted(self, pub: Publication) -> list[float]:
        """When each share of `pub` that Weibo said was posted (or a repeat) was sent."""
        return self._stamps(self._posted_key(pub))

    def _stamps(self, key: str) -> list[float]:
        raw = self.shared.get(key)
        try:
            stamps = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [float(t) for t in stamps if isinstance(t, int | float)]

    def search_due(
        self,
        pub: Publication,
        sent: list[float],
        where: str = TIMELINE,
        every: float = SEARCH_EVERY_SECONDS,
    ) -> bool:
        """Whether the timeline (or the post whose id is `where`) may be searched now for
        `pub`'s newest unanswered share (sent at `max(sent)`): the first asking in each
        `every` seconds is answered yes, across workers; a search that fails gives its turn
        back (`read`, `searched`), so a busy Weibo does not hold the post for an hour."""
        return self.shared.count(self._search_key(pub, sent, where), every) == 1

    def give_back(
        self, pub: Publication, sent: list[float], where: str, every: float = SEARCH_EVERY_SECONDS
    ) -> None:
        """Hand back the turn `search_due` gave for `where` (the search it was for failed)."""
        if sent:
            self.shared.count(self._search_key(pub, sent, where), every, by=-1)

    def _search_key(self, pub: Publication, sent: list[float], where: str) -> str:
        return f"weibo:searched:{self.account}:{pub.external_id}:{max(sent):.6f}:{where}"

    def read(self, pub: Publication, sent: list[float], status_id: str) -> dict[str, Any] | None:
        """`by_id`, giving the hour's turn back when the read fails."""
        try:
            return self.by_id(status_id)
        except ChannelError:
            self.give_back(pub, sent, status_id)
            raise

    def searched(
        self,
        pub: Publication,
        wanted: set[str],
        sent: list[float],
        where: str = TIMELINE,
        every: float = SEARCH_EVERY_SECONDS,
    ) -> Timeline:
        """`on_timeline`, giving the turn (`where`, `every`) back when the search fails."""
        try:
            return self.on_timeline(pub, wanted, sent)
        except ChannelError:
            self.give_back(pub, sent, where, every)
            raise

    def notes(self, pub: Publication, kept: Mapping[str, Any]) -> Notes:
        """`pub`'s notes in the shared store, with those `kept` in the delivery's remote
        state (the store may have been flushed)."""
        return Notes(
            _merged(self.unanswered(pub), kept.get(UNANSWERED)),
            _merged(self.posted(pub), kept.get(SAID_POSTED)),
        )

    def search_hourly(self, pub: Publication, wanted: set[str], notes: Notes) -> Timeline:
        """The timeline searched for `pub`'s unanswered shares (some). Raises `OutcomeUnknown`
        (keeping `notes`) without calling when it was searched for the newest of them within
        the hour (`search_due`)."""
        if not self.search_due(pub, list(notes.sent)):
            raise OutcomeUnknown(SEARCHED_WITHIN_THE_HOUR, state=notes.state())
        return self.searched(pub, wanted, list(notes.sent))

    def lost_post(self, pub: Publication, wanted: set[str], notes: Notes) -> Found | None:
        """`pub`'s post made by one of its unanswered shares (some), found on the timeline;
        None when none made one: every share is older than `slow_seconds`, the posts read
        reach back to `CLOCK_SKEW_SECONDS` before the oldest, and Weibo said of none that it
        was posted or a repeat. Otherwise raises `OutcomeUnknown` (keeping `notes`): the post
        may still show up (while it may, the timeline is searched once, on a turn of its own,
        so the hour's is kept for a search that can conclude), or have scrolled off."""
        sent = list(notes.sent)
        showing_until = max(sent) + self.slow_seconds
        if time.time() < showing_until:
            if self.search_due(pub, sent, EARLY, self.slow_seconds):
                found = self.searched(pub, wanted, sent, EARLY, self.slow_seconds).found
                if found is not None:
                    return found
            when = datetime.fromtimestamp(showing_until, BEIJING).strftime("%H:%M:%S")
            raise OutcomeUnknown(
                "weibo: 发出的微博结果未知，时间线上暂未找到；微博可能尚未显示它"
                f"（新微博最多约 {self.slow_seconds:g} 秒后显示），北京时间 {when} 后再查找，"
                "此后每小时最多查找一次；暂不重发" + ASK_AN_OPERATOR,
                state=notes.state(),
            )
        timeline = self.search_hourly(pub, wanted, notes)
        if timeline.found is not None:
            return timeline.found
        if notes.posted or not timeline.reaches_back_to(min(sent) - CLOCK_SKEW_SECONDS):
            explanation = NOT_FOUND_SAID_POSTED if notes.posted else NOT_FOUND
            raise OutcomeUnknown(explanation, state=notes.state())
        return None

    def _write_sent(self, pub: Publication, stamps: list[float]) -> None:
        if stamps:
            self.shared.set(self._sent_key(pub), json.dumps(stamps), NOTE_TTL_SECONDS)
        else:
            self.shared.delete(self._sent_key(pub))

    def _sent_key(self, pub: Publication) -> str:
        return f"weibo:unanswered:{self.account}:{pub.external_id}"

    def _posted_key(self, pub: Publication) -> str:
        return f"weibo:posted:{self.account}:{pub.external_id}"

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

    def on_timeline(self, pub: Publication, wanted: set[str], sent: list[float]) -> Timeline:
        """`pub`'s post among the newest on the timeline, and how far back the posts read
        reach. `wanted`: the texts (links aside) the revision may show; `sent`: when our
        unanswered shares went out."""
        by_text: Mapping[str, Any] | None = None
        by_link: Mapping[str, Any] | None = None
        oldest: float | None = None
        for status in self._timeline():
            made = created_at(status)
            if made is not None:
                at = made.timestamp()
                oldest = at if oldest is None else min(oldest, at)
            if self._claimed_by_another(status, pub):
                continue
            ours_text = without_links(str(status.get("text", ""))) in wanted
            links = self._links_of(status, resolve=ours_text)
            if pub.website_url and pub.website_url in links:
                if ours_text:
                    return Timeline(Found(status, True), oldest)
                by_link = by_link or status
            elif ours_text and not _elsewhere(links, pub) and _made_near(status, sent):
                by_text = by_text or status
        if by_text is not None:
            return Timeline(Found(by_text, True), oldest)
        return Timeline(None if by_link is None else Found(by_link, False), oldest)

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


def _merged(noted: list[float], kept: Any) -> tuple[float, ...]:
    """The stamps `noted` in the shared store and those `kept` with the delivery, oldest first."""
    extra = kept if isinstance(kept, list) else []
    return tuple(sorted({*noted, *(float(t) for t in extra if isinstance(t, int | float))}))


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


__all__ = [
    "SAID_POSTED",
    "TIMELINE",
    "UNANSWERED",
    "Found",
    "Notes",
    "PostFinder",
    "Timeline",
    "created_at",
    "idstr",
    "without_links",
]
