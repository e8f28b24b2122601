"""Weibo over its open API (docs/protocols.md §6): share, destroy, find a status on the timeline.

Weibo has no idempotency key and cannot edit. So: every post takes a slot of the account's
hourly budget first (shared by all workers; over budget → `RateLimited`, never a failure); an
answer lost after sending → `OutcomeUnknown`, and `lookup` searches the account's timeline
before anything is posted again; "repeat content" (20019/20111) means the post is probably
there already, so `create` looks it up at once and adopts it. An edit deletes and reposts, or
posts a correction and keeps the old post (`weibo_edit_policy`).

The token comes from the shared store key `weibo:access_token` (an operator's re-authorisation
lands there) or else from the settings; it is read on every call, so a new token takes effect
at once. With no token anywhere the channel is disabled (the engine's pool builds it again
once one is given); a token gone at call time waits for an operator
(`AuthExpired(refreshable=False)`). It never appears in an error message.

Finding our post: Weibo's timeline is searched by the item's own link, the website article URL
(in the text as posted, in Weibo's expanded-link fields, or behind a short link that is
resolved when its text is a candidate). Government titles repeat ("停水通知"), so the text
alone never adopts a post, and a post linking to another item is never ours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Self
from urllib.parse import quote, urlsplit

import requests

from channels.base import (
    Capability,
    HttpChannel,
    Problem,
    Publication,
    Receipt,
    Remote,
    SharedStore,
    token_key,
    transport_error,
)
from channels.errors import (
    AuthExpired,
    ChannelDisabled,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    RateLimited,
    Retryable,
)
from channels.fetch import FetchPolicy, ImageFetcher
from channels.weibo_text import LIMIT_UNITS, TooLong, preflight, status_for, units

TOKEN_KEY = token_key("weibo")
REAL_API_HOST = "api.weibo.com"
REAL_WEB_BASE = "https://weibo.com"

BUSY = frozenset({10001, 10002, 10003, 10009, 10010})
RATE_LIMITED = frozenset({10022, 10023, 10024})
REPEATED = frozenset({20019, 20111})
GONE = 20101
TOKEN_REFUSED = frozenset({21301, 21314, 21315, 21316, 21317, 21318, 21319, 21327, 21332})
# Plain words for the operator; Weibo's own text travels beside them in `message`.
EXPLANATIONS: dict[int, str] = {
    10017: "the status must link to a page on the app's registered safe domain",
    20005: "Weibo accepts only JPG, GIF or PNG cover images",
    20006: "the cover image is larger than Weibo accepts (5 MB)",
    20007: "Weibo did not find an image in the upload",
    20008: "the status text is empty",
    20012: "the status text is longer than 140 units",
    20017: "Weibo refused a status too similar to a recent one",
    20021: "Weibo judged the content illegal; edit the item",
    20101: "the post no longer exists on Weibo",
}
LINK = re.compile(r"https?://[^\s<>\"'，。！？；）】]+")
# Weibo rewrites links to these shorteners; their target is read from the redirect.
SHORT_LINK_HOSTS = ("t.cn", "sinaurl.cn")
NO_TOKEN = "weibo: no access token: give one with `publisher channels set-token weibo`"


@dataclass(frozen=True)
class WeiboSettings:
    """What the Weibo adapter needs: the API, the account, its post budget and policies.

    `access_token` None: only the shared store's (`TOKEN_KEY`); `posts_per_window` posts per
    `window_seconds` is the account's budget; `safe_domains` are the hosts a post may link to
    (empty: not checked before sending); `web_base` None: derived from `api_base`; `fetch`:
    what may be downloaded of the cover image an item links to (`channels.fetch`).
    """

    api_base: str
    access_token: str | None = field(default=None, repr=False)
    rip: str = "127.0.0.1"
    account: str = "default"
    posts_per_window: int = 30
    window_seconds: float = 3600.0
    edit_policy: Literal["repost", "correction"] = "repost"
    safe_domains: tuple[str, ...] = ()
    web_base: str | None = None
    timeout: float = 10.0
    fetch: FetchPolicy = field(default_factory=FetchPolicy)


class _RepeatedContent(Exception):
    """Weibo said 20019/20111: the same text is already on the account (probably ours)."""

    def __init__(self, error: ChannelError) -> None:
        super().__init__(str(error))
        self.error = error


class WeiboChannel(HttpChannel):
    """Weibo speaks forms, not JSON, so it sends with its own `_call`; an answer without
    Weibo's `error_code` is mapped to typed errors by `HttpChannel`'s status rules."""

    kind: ClassVar[str] = "weibo"
    title: ClassVar[str] = "微博"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CREATE, Capability.UPDATE, Capability.DELETE, Capability.LOOKUP}
    )
    needs_website_url: ClassVar[bool] = True

    def __init__(
        self,
        api_base: str,
        shared: SharedStore,
        *,
        access_token: str | None = None,
        rip: str = "127.0.0.1",
        account: str = "default",
        posts_per_window: int = 30,
        window_seconds: float = 3600.0,
        edit_policy: str = "repost",
        safe_domains: Iterable[str] = (),
        web_base: str | None = None,
        timeout: float = 10.0,
        lookup_pages: int = 3,
        lookup_page_size: int = 50,
        short_link_hosts: Iterable[str] = SHORT_LINK_HOSTS,
        fetch: FetchPolicy | None = None,
    ) -> None:
        if edit_policy not in ("repost", "correction"):
            raise ValueError(
                f"weibo_edit_policy must be 'repost' or 'correction', not {edit_policy!r}"
            )
        super().__init__(api_base, timeout=timeout)
        self.shared = shared
        self.configured_token = access_token
        self.rip = rip
        self.account = account
        self.posts_per_window = posts_per_window
        self.window_seconds = window_seconds
        self.edit_policy = edit_policy
        self.safe_domains = tuple(d for d in safe_domains if d.strip())
        self.web_base = (web_base or _web_base(self.api_base)).rstrip("/")
        self.lookup_pages = lookup_pages
        self.lookup_page_size = lookup_page_size
        self.short_link_hosts = tuple(h.lower() for h in short_link_hosts)
        self._expanded: dict[str, str | None] = {}
        self.images = ImageFetcher(fetch or FetchPolicy(), channel=self.kind, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: WeiboSettings, shared: SharedStore) -> Self:
        """The adapter for these settings. Raises `ChannelDisabled` without any access token
        (settings or shared store); a token that disappears later surfaces as `AuthExpired` at
        call time."""
        configured = settings.access_token
        if not configured and not shared.get(TOKEN_KEY):
            # Not connected to an account: off, rather than in every item's channel list.
            # A token given later (API or CLI) enables it within the pool's disabled TTL.
            raise ChannelDisabled(
                "weibo: set PUBLISHER_WEIBO_ACCESS_TOKEN or give a token with "
                "`publisher channels set-token weibo`"
            )
        return cls(
            settings.api_base,
            shared,
            access_token=configured,
            rip=settings.rip,
            account=settings.account,
            posts_per_window=settings.posts_per_window,
            window_seconds=settings.window_seconds,
            edit_policy=settings.edit_policy,
            safe_domains=settings.safe_domains,
            web_base=settings.web_base,
            timeout=settings.timeout,
            fetch=settings.fetch,
        )

    # -- the hooks --------------------------------------------------------------------------

    def preflight(self, pub: Publication) -> list[Problem]:
        return preflight(pub, self.safe_domains)

    def create(self, pub: Publication) -> Receipt:
        """Post `pub`; adopt the existing post when Weibo says it is a repeat.

        Raises `RateLimited` before sending when the account's budget is spent, and
        `OutcomeUnknown` when the answer was lost or a repeat cannot be found.
        """
        text = self._text(pub)
        self._token()  # no token: wait for an operator without spending a slot
        self._take_slot()
        return self._post(pub, text, rendered=text)

    def update(self, pub: Publication, remote: Remote) -> Receipt:
        """Weibo cannot edit: repost (delete, then post anew) or post a correction.

        A revision whose status text is unchanged needs nothing on Weibo.
        """
        text = self._text(pub)
        if remote.state.get("rendered") == text:
            return Receipt(
                remote.remote_id, remote.url, dict(remote.state), content_hash=pub.content_hash
            )
        self._token()
        if self.edit_policy == "correction":
            correction = self._text(pub, correction=True)
            self._take_slot()
            return self._post(pub, correction, rendered=text, earlier=_all_ids(remote))
        # The slot is taken before deleting, so pacing never leaves the account without a post.
        self._take_slot()
        self.delete(remote)
        return self._post(pub, text, rendered=text)

    def _post(
        self, pub: Publication, text: str, *, rendered: str, earlier: list[str] | None = None
    ) -> Receipt:
        """Share `text`; on "repeat content" adopt the post already there, if it can be found."""
        try:
            status = self._share(text, pub.cover_image_url)
        except _RepeatedContent as repeated:
            found = self.lookup(pub, Remote("", state={"earlier": earlier or []}))
            if found is None:
                raise OutcomeUnknown(
                    "weibo: Weibo says this text was already posted, but it is not on the "
                    "account's recent timeline; look up again before posting",
                    code=repeated.error.code,
                    message=repeated.error.message,
                    http_status=repeated.error.http_status,
                ) from None
            return found
        return self._receipt(status, pub, rendered=rendered, earlier=earlier)

    def delete(self, remote: Remote) -> None:
        """Destroy the post (and earlier posts it corrected); an absent post is fine."""
        for status_id in _all_ids(remote):
            try:
                self._call("POST", "/2/statuses/destroy.json", data={"id": status_id})
            except ChannelError as exc:
                if exc.code != str(GONE):
                    raise

    def lookup(self, pub: Publication, remote: Remote | None) -> Receipt | None:
        """Find `pub`'s post on the account's recent timeline (None: it is not there).

        Only a post linking to `pub`'s website article (or the recorded post) can be ours.
        Among those: one showing this revision's text (links aside) is adopted as this
        revision; else the recorded post, else the newest linking post, without a content
        hash (what it shows is not known to be this revision).
        """
        wanted = {_without_links(t) for t in self._candidate_texts(pub)}
        remote_id = remote.remote_id if remote else None
        known = _all_ids(remote)
        by_id: dict[str, Any] | None = None
        by_link: dict[str, Any] | None = None
        for status in self._timeline():
            idstr = _idstr(status)
            text = str(status.get("text", ""))
            links = self._links_of(status, resolve=_without_links(text) in wanted)
            if pub.website_url and pub.website_url in links:
                if _without_links(text) in wanted:
                    earlier = [i for i in known if i != idstr]
                    return self._receipt(status, pub, rendered=self._text(pub), earlier=earlier)
                by_link = by_link or status
            if remote_id and idstr == remote_id:
                by_id = status
        found = by_id or by_link
        if found is None:
            return None
        found_id = _idstr(found)
        return self._receipt(
            found, None, rendered=None, earlier=[i for i in known if i != found_id]
        )

    def preview(self, pub: Publication) -> dict[str, Any]:
        """The exact status text a post would carry and its length in Weibo's units."""
        shown: dict[str, Any] = {"limit_units": LIMIT_UNITS, "edit_policy": self.edit_policy}
        try:
            text = status_for(pub)
        except (TooLong, ValueError) as exc:
            return {**shown, "status": None, "units": None, "problem": str(exc)}
        shown.update(status=text, units=units(text), picture=pub.cover_image_url)
        if self.edit_policy == "correction":
            try:
                correction = status_for(pub, correction=True)
                shown.update(correction_status=correction, correction_units=units(correction))
            except TooLong as exc:
                shown["correction_problem"] = str(exc)
        return shown

    def health(self) -> dict[str, Any]:
        return {
            "api_base": self.api_base,
            "token": _token_source(self.shared.get(TOKEN_KEY), self.configured_token),
            "posts_per_window": self.posts_per_window,
            "window_seconds": self.window_seconds,
            "edit_policy": self.edit_policy,
        }

    # -- rendering and pacing ---------------------------------------------------------------

    def _text(self, pub: Publication, *, correction: bool = False) -> str:
        problems = self.preflight(pub)
        if problems:
            raise Permanent(f"weibo: {problems[0].message}", code=problems[0].rule)
        try:
            return status_for(pub, correction=correction)
        except TooLong as exc:
            raise Permanent(f"weibo: {exc}", code="max_units") from exc

    def _candidate_texts(self, pub: Publication) -> list[str]:
        texts = []
        for correction in (False, True):
            try:
                texts.append(status_for(pub, correction=correction))
            except (TooLong, ValueError):
                continue
        return texts

    def _take_slot(self) -> None:
        """Count one post against the account's budget; `RateLimited` when it is spent."""
        key = f"weibo:posts:{self.account}"
        wait = self.shared.take_slot(key, self.posts_per_window, self.window_seconds)
        if wait is not None:
            raise RateLimited(
                f"weibo: {self.posts_per_window} posts per {self.window_seconds:g}s used for "
                f"account {self.account}; waiting for the next window",
                until=datetime.now(UTC) + timedelta(seconds=wait),
            )

    # -- HTTP -------------------------------------------------------------------------------

    def _share(self, text: str, cover_image_url: str | None) -> dict[str, Any]:
        data = {"status": text, "rip": self.rip}
        files = None
        if cover_image_url:
            name, content, content_type = self._download(cover_image_url)
            files = {"pic": (name, content, content_type)}
        try:
            return self._call("POST", "/2/statuses/share.json", data=data, files=files)
        except ChannelError as exc:
            if exc.code is not None and exc.code.isdigit() and int(exc.code) in REPEATED:
                raise _RepeatedContent(exc) from exc
            raise

    def _download(self, url: str) -> tuple[str, bytes, str]:
        """The cover image's name, bytes and type. Raises `Permanent` naming the image."""
        data, content_type = self.images.fetch(url, "封面图片")
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "cover.jpg"
        return name, data, content_type or "image/jpeg"

    def _timeline(self) -> Iterable[dict[str, Any]]:
        for page in range(1, self.lookup_pages + 1):
            body = self._call(
                "GET",
                "/2/statuses/user_timeline.json",
                params={"count": self.lookup_page_size, "page": page},
            )
            statuses = body.get("statuses") or []
            yield from (s for s in statuses if isinstance(s, dict))
            if len(statuses) < self.lookup_page_size:
                return

    def _token(self) -> str:
        token = self.shared.get(TOKEN_KEY) or self.configured_token
        if not token:
            raise AuthExpired(NO_TOKEN, refreshable=False)
        return token

    def _links_of(self, status: Mapping[str, Any], *, resolve: bool) -> set[str]:
        """Every link of `status`: in its text, in Weibo's expanded-link fields, and (when
        `resolve`) the targets of its short links. Raises `Retryable` if one cannot be read."""
        links = set(LINK.findall(str(status.get("text", ""))))
        for entry in status.get("url_struct") or []:
            if isinstance(entry, Mapping):
                for field in ("ori_url", "long_url", "url_long"):
                    value = entry.get(field)
                    if isinstance(value, str) and value:
                        links.add(value)
        if resolve:
            for link in list(links):
                if (urlsplit(link).hostname or "").lower() in self.short_link_hosts:
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

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One API call; the JSON object Weibo answered. Raises typed errors only."""
        token = self._token()
        write = method != "GET"
        # The header carries the token; the parameter too, for servers that read only that.
        headers = {"Authorization": f"OAuth2 {token}", "Accept": "application/json"}
        if write:
            data = {"access_token": token, **(data or {})}
        else:
            params = {"access_token": token, **(params or {})}
        try:
            resp = self.http.request(
                method,
                self.api_base + path,
                params=params,
                data=data,
                files=files,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise transport_error(
                "weibo", exc, write=write, message=_redact(str(exc), token)
            ) from exc
        return self._weibo_answer(resp, method, write=write, token=token)

    def _weibo_answer(
        self, resp: requests.Response, method: str, *, write: bool, token: str
    ) -> dict[str, Any]:
        """The JSON object Weibo answered.

        Weibo's `{"error", "error_code"}` body decides first, whatever the HTTP status; any
        other answer is mapped by `HttpChannel`'s status rules, with the token redacted.
        """
        try:
            body = resp.json()
        except ValueError:
            body = None
        try:
            if isinstance(body, dict) and body.get("error_code") is not None:
                raise self._weibo_error(body, resp.status_code, resp.headers.get("Retry-After"))
            answered = self._answer(
                resp, method, write=write, ok=(200, 201), absent_ok=False, elapsed=0
            )
        except ChannelError as exc:  # Weibo's text, or a proxy's, may repeat the token
            exc.message = None if exc.message is None else _redact(exc.message, token)
            raise
        assert answered is not None  # absent_ok is off
        if isinstance(answered.body, dict):
            return answered.body
        explanation = f"weibo: answered {resp.status_code} with a body that is not a JSON object"
        common: dict[str, Any] = {
            "message": _redact(resp.text[:500], token),
            "http_status": resp.status_code,
        }
        if write:
            raise OutcomeUnknown(explanation, **common)
        raise Retryable(explanation, **common)

    def _weibo_error(
        self, body: Mapping[str, Any], status: int, retry_after: str | None
    ) -> ChannelError:
        """The typed error for Weibo's `{"error", "error_code", "request"}` answer."""
        raw_code = body.get("error_code")
        code = int(str(raw_code)) if str(raw_code).isdigit() else -1
        common: dict[str, Any] = {
            "code": raw_code,
            "message": str(body.get("error", "")),
            "http_status": status,
        }
        if code in BUSY:
            return Retryable("weibo: Weibo is busy; try again shortly", **common)
        if code in RATE_LIMITED:
            return RateLimited(
                "weibo: the account's Weibo rate limit is spent; waiting for the window to end",
                until=self._until(retry_after),
                **common,
            )
        if code in TOKEN_REFUSED:
            return AuthExpired(
                "weibo: the access token is expired or invalid; an operator must "
                "re-authorise the Weibo account",
                refreshable=False,
                **common,
            )
        explanation = EXPLANATIONS.get(code, "Weibo refused the request")
        return Permanent(f"weibo: {explanation}", **common)

    def _until(self, retry_after: str | None) -> datetime:
        """Weibo's reset time when it gave one, else one hour from now."""
        try:
            seconds = max(1.0, float(retry_after)) if retry_after else 3600.0
        except ValueError:
            seconds = 3600.0
        return datetime.now(UTC) + timedelta(seconds=seconds)

    # -- receipts ---------------------------------------------------------------------------

    def _receipt(
        self,
        status: Mapping[str, Any],
        pub: Publication | None,
        *,
        rendered: str | None,
        earlier: list[str] | None = None,
    ) -> Receipt:
        """A receipt for `status`; `pub` given when the post is known to show that revision."""
        idstr = _idstr(status)
        if not idstr:
            raise OutcomeUnknown(
                "weibo: the answer carries no status id",
                message=json.dumps(status, ensure_ascii=False)[:500],
            )
        user = status.get("user") if isinstance(status.get("user"), Mapping) else {}
        uid = str(user.get("idstr") or user.get("id") or "") if user else ""
        url = f"{self.web_base}/{uid}/{idstr}" if uid else None
        state: dict[str, Any] = {"id": idstr}
        if rendered is not None:
            state["rendered"] = rendered
        state["earlier"] = list(earlier or [])
        return Receipt(
            idstr, url, state, content_hash=pub.content_hash if pub is not None else None
        )


def _web_base(api_base: str) -> str:
    """Where status pages live: weibo.com for the real API, else the API server itself."""
    host = urlsplit(api_base).hostname or ""
    return REAL_WEB_BASE if host == REAL_API_HOST else api_base


def _all_ids(remote: Remote | None) -> list[str]:
    """The post and the earlier posts it corrected (newest first)."""
    if remote is None:
        return []
    earlier = remote.state.get("earlier") or []
    ids = [remote.remote_id, *(str(i) for i in earlier)]
    return list(dict.fromkeys(i for i in ids if i))


def _token_source(shared: str | None, configured: str | None) -> str:
    if shared:
        return "shared store"
    return "settings" if configured else "missing: give one with `publisher channels set-token`"


def _idstr(status: Mapping[str, Any]) -> str:
    return str(status.get("idstr") or status.get("id") or "")


def _without_links(text: str) -> str:
    return " ".join(LINK.sub("", text).split())


def _redact(text: str, token: str) -> str:
    """`text` without the token (raw or URL-encoded): error messages are logged and shown."""
    if not token:
        return text
    return text.replace(token, "***").replace(quote(token, safe=""), "***")
