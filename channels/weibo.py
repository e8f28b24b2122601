"""Weibo over its open API (docs/protocols.md §6): share, destroy, read a post by id.

Weibo has no idempotency key and cannot edit. So: every post takes a slot of the account's
hourly post budget first (30 an hour per user and app, https://open.weibo.com/wiki/Rate-limiting;
shared by all workers; over budget → `RateLimited`, never a failure), and every API call one
of the account's daily calls (100 a day per user and app, same page; `channels.budgets`,
spent → `QuotaExhausted` until midnight in Beijing). An answer lost after sending, or
Weibo's "posted, server slow" (20032) → `OutcomeUnknown`, and `lookup` finds the post
(`channels.weibo_lookup`) before anything is posted again; "repeat content" (20019/20111)
means the post is probably there already, so `create` looks it up at once and adopts it.
What each error code means is data in `channels.weibo_codes`. An edit deletes and reposts,
or posts a correction and keeps the old post (`weibo_edit_policy`).

`rip` is "开发者上报的操作用户真实IP" (https://open.weibo.com/wiki/2/statuses/share): on the
real API it must be the server's public IP, so the channel is not built without it.

The token comes from the shared store key `weibo:access_token` (an operator's re-authorisation
lands there) or else from the settings; it is read on every call, so a new token takes effect
at once. With no token anywhere the channel is disabled (the engine's pool builds it again
once one is given); a token gone at call time waits for an operator
(`AuthExpired(refreshable=False)`). It never appears in an error message.

A lookup reads a post by its id (`statuses/show`); the timeline is searched only for a post
whose id was lost. Not finding it there leaves the outcome unknown (it may have scrolled off),
unless the posts read reach back to before every unanswered share, each share is older than
the time Weibo may take to show it (`slow_seconds`; 20032 speaks of 1-2 minutes), and Weibo
never said one was posted (20032) or a repeat (20019/20111): then the share made no post, and
the lookup answers so (None), so that the engine posts again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import requests

from channels.base import (
    Capability,
    HttpChannel,
    Problem,
    Publication,
    Receipt,
    Remote,
    SharedStore,
    transport_error,
)
from channels.budgets import BudgetUse, DailyBudgets, next_beijing_midnight
from channels.errors import (
    AuthExpired,
    ChannelDisabled,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    QuotaExhausted,
    RateLimited,
    Retryable,
)
from channels.fetch import FetchPolicy, ImageFetcher
from channels.weibo_codes import GONE, POSTED, REPEATED, UNSETTLED, error_for, lookup_code
from channels.weibo_lookup import (
    SAID_POSTED,
    TIMELINE,
    UNANSWERED,
    Found,
    PostFinder,
    idstr,
    without_links,
)
from channels.weibo_media import weibo_picture
from channels.weibo_settings import (
    DAILY_CALLS,
    NO_RIP,
    NO_TOKEN,
    SANDBOX_RIP,
    SLOW_SECONDS,
    TOKEN_KEY,
    WeiboSettings,
    public_ip,
    real_api,
    redact,
    short_links_for,
    token_source,
    web_base_for,
)
from channels.weibo_text import LIMIT_UNITS, TooLong, preflight, status_for, units

CALLS = "calls"  # the one daily budget: every API call of the user in the app


class _Repeated(Exception):
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
        rip: str = SANDBOX_RIP,
        account: str = "default",
        posts_per_window: int = 30,
        window_seconds: float = 3600.0,
        daily_calls: int = DAILY_CALLS,
        edit_policy: str = "repost",
        safe_domains: Iterable[str] = (),
        web_base: str | None = None,
        timeout: float = 10.0,
        lookup_pages: int = 3,
        lookup_page_size: int = 50,
        short_links: Iterable[str] | None = None,
        fetch: FetchPolicy | None = None,
        slow_seconds: float = SLOW_SECONDS,
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
        self.slow_seconds = slow_seconds
        self.safe_domains = tuple(d for d in safe_domains if d.strip())
        self.web_base = (web_base or web_base_for(self.api_base)).rstrip("/")
        self.budgets = DailyBudgets(shared, self.kind, {CALLS: daily_calls})
        self.finder = PostFinder(
            self._call,
            shared,
            self.http,
            account=account,
            timeout=timeout,
            short_links=short_links_for(self.api_base) if short_links is None else short_links,
            pages=lookup_pages,
            page_size=lookup_page_size,
            slow_seconds=slow_seconds,
        )
        self.images = ImageFetcher(fetch or FetchPolicy(), channel=self.kind, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: WeiboSettings, shared: SharedStore) -> Self:
        """The adapter for these settings. Raises `ChannelDisabled` without any access token
        (settings or shared store), or on the real API without `rip`; a token that disappears
        later surfaces as `AuthExpired` at call time."""
        configured = settings.access_token
        if not configured and not shared.get(TOKEN_KEY):
            # Not connected to an account: off, rather than in every item's channel list.
            # A token given later (API or CLI) enables it within the pool's disabled TTL.
            raise ChannelDisabled(
                "weibo: set PUBLISHER_WEIBO_ACCESS_TOKEN or give a token with "
                "`publisher channels set-token weibo`"
            )
        if real_api(settings.api_base) and not public_ip(settings.rip):
            raise ChannelDisabled(
                NO_RIP + (f"; {settings.rip} is not public" if settings.rip else "")
            )
        return cls(
            settings.api_base,
            shared,
            access_token=configured,
            rip=settings.rip or SANDBOX_RIP,
            account=settings.account,
            posts_per_window=settings.posts_per_window,
            window_seconds=settings.window_seconds,
            daily_calls=settings.daily_calls,
            edit_policy=settings.edit_policy,
            safe_domains=settings.safe_domains,
            web_base=settings.web_base,
            timeout=settings.timeout,
            fetch=settings.fetch,
            slow_seconds=settings.slow_seconds,
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
        # Both checked before deleting, so neither pacing nor the day's calls leave the account
        # without a post: the deletes and the share must all fit in what is left today.
        self._ensure_calls(len(_all_ids(remote)) + 1)
        self._take_slot()
        self.delete(remote)
        return self._post(pub, text, rendered=text)

    def _post(
        self, pub: Publication, text: str, *, rendered: str, earlier: list[str] | None = None
    ) -> Receipt:
        """Share `text`; on "repeat content" adopt the post already there, if it can be found
        (never taken for absent: Weibo says it is there)."""
        try:
            status = self._share(pub, text)
        except _Repeated as repeated:
            notes = self.finder.notes(pub, {})
            found = self.finder.search_hourly(pub, self._wanted(pub), notes).found
            if found is None:
                raise OutcomeUnknown(
                    "weibo: 微博称相同内容已发布，但在账号最新的微博中找不到它；暂不重发，"
                    "稍后再查找（管理员可按微博 ID 认领，或标记为已发布）",
                    state=notes.state(),
                    code=repeated.error.code,
                    message=repeated.error.message,
                    http_status=repeated.error.http_status,
                ) from None
            return self._adopt(found, pub, earlier or [])
        self.finder.settled(pub, idstr(status))
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
        """`pub`'s post, read by the recorded id (`remote`) with `statuses/show`; None when
        Weibo says it does not exist, or shows a post that is not `pub`'s
        (`PostFinder.recognised`), and no share of `pub` is unanswered.

        While a share of `pub` is unanswered (its id lost), the post is searched on the
        timeline (`PostFinder.on_timeline`) unless the recorded post already shows this
        revision: once while Weibo may still be showing a share (`slow_seconds` after the
        newest), then at most once an hour. Not found there, it was never made (None, or the
        recorded post, which the share was to replace or correct) only if the posts read
        reach back to `CLOCK_SKEW_SECONDS` before the oldest share, every share is older than
        `slow_seconds`, and Weibo never said one was posted (20032) or a repeat (20019/20111).
        Otherwise raises `OutcomeUnknown` (also when the search's turn is not due): it may
        still show up, or have scrolled off, so nothing may be posted again until it is found,
        adopted or marked by an operator. With no recorded post showing it and none
        unanswered, only a post linking to its article on the timeline is found, and None
        otherwise.
        """
        known = _all_ids(remote)
        wanted = self._wanted(pub)
        notes = self.finder.notes(pub, remote.state if remote is not None else {})
        sent = list(notes.sent)
        recorded: Found | None = None
        read = False
        if remote is not None and remote.remote_id and self._may_read(pub, sent, remote):
            status = self.finder.read(pub, sent, remote.remote_id)
            recorded = None if status is None else self.finder.recognised(status, pub, wanted)
            read = True
            if recorded is not None and (recorded.shows_revision or not sent):
                return self._adopt(recorded, pub, known)
        # No share noted as unanswered (none lost, or its note lost with a killed worker or a
        # flushed store): only a post linking to the item is ours; none there, nothing is.
        if not sent:
            found = self.finder.on_timeline(pub, wanted, sent).found
            return None if found is None else self._adopt(found, pub, known)
        found = self.finder.lost_post(pub, wanted, notes)
        if found is not None:
            return self._adopt(found, pub, known)
        # No share made a post. What is there now is the recorded post (a repost's deleted
        # one, a correction's original), read now if this lookup has not read it yet.
        if remote is not None and remote.remote_id and not read:
            try:
                status = self.finder.by_id(remote.remote_id)
                recorded = None if status is None else self.finder.recognised(status, pub, wanted)
            except ChannelError:
                self.finder.give_back(pub, sent, TIMELINE)  # searched again at the next lookup
                raise
        self.finder.absent(pub)
        return None if recorded is None else self._adopt(recorded, pub, known)

    def _may_read(self, pub: Publication, sent: list[float], remote: Remote) -> bool:
        """Whether to read `remote`'s post by its id: always with no share unanswered, else
        once an hour per id (the engine's retries read the recorded post once an hour; an
        id an operator gives is read at once)."""
        return not sent or self.finder.search_due(pub, sent, remote.remote_id)

    def _adopt(self, found: Found, pub: Publication, known: list[str]) -> Receipt:
        """The receipt for a post judged `pub`'s, claimed for it from now on."""
        found_id = idstr(found.status)
        earlier = [i for i in known if i != found_id]
        self.finder.settled(pub, found_id)
        if found.shows_revision:
            return self._receipt(found.status, pub, rendered=self._text(pub), earlier=earlier)
        return self._receipt(found.status, None, rendered=None, earlier=earlier)

    def _wanted(self, pub: Publication) -> set[str]:
        return {without_links(t) for t in self._candidate_texts(pub)}

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

    def budget_usage(self) -> list[BudgetUse]:
        return self.budgets.usage()

    def health(self) -> dict[str, Any]:
        return {
            "api_base": self.api_base,
            "token": token_source(self.shared.get(TOKEN_KEY), self.configured_token),
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

    def _ensure_calls(self, needed: int) -> None:
        """Raise `QuotaExhausted`, as spending would, unless `needed` calls are left today."""
        limit = self.budgets.limits[CALLS]
        left = limit - self.budgets.used(CALLS)
        if left < needed:
            raise QuotaExhausted(
                f"weibo: 改发需删除原微博再发布，共需 {needed} 次调用，今日只剩 {max(0, left)} 次"
                f"（每日 {limit} 次）；原微博保留，北京时间零点后再改发",
                until=next_beijing_midnight(),
            )

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

    def _share(self, pub: Publication, text: str) -> dict[str, Any]:
        """Post `text` (with `pub`'s cover). The share is noted as unanswered until Weibo
        answers with the post, or with an error saying nothing was posted."""
        data = {"status": text, "rip": self.rip}
        files = None
        if pub.cover_image_url:
            files = {"pic": self._picture(pub.cover_image_url)}
        stamp = time.time()
        self.finder.sending(pub, stamp)
        try:
            return self._call("POST", "/2/statuses/share.json", data=data, files=files)
        except ChannelError as exc:
            code = int(exc.code) if exc.code is not None and exc.code.isdigit() else None
            if code in REPEATED:
                self.finder.said_posted(pub, stamp)
                raise _Repeated(exc) from exc
            if code in UNSETTLED:  # failed mid-way: the post may be out, so look it up first
                raise OutcomeUnknown(
                    f"weibo: {lookup_code(code).explanation}：发布结果未知，"
                    "先查找该微博，不重复发布",
                    state={UNANSWERED: self.finder.unanswered(pub) or [stamp]},
                    code=exc.code,
                    message=exc.message,
                    http_status=exc.http_status,
                ) from exc
            if not isinstance(exc, OutcomeUnknown):
                self.finder.failed(pub, stamp)
            else:  # kept with the delivery too: the shared store's note may be lost
                exc.state[UNANSWERED] = self.finder.unanswered(pub) or [stamp]
                if code in POSTED:  # Weibo says it went out: never taken for absent
                    self.finder.said_posted(pub, stamp)
                    exc.state[SAID_POSTED] = self.finder.posted(pub) or [stamp]
            raise

    def _picture(self, url: str) -> tuple[str, bytes, str]:
        """The cover as `(name, bytes, type)` Weibo accepts (`channels.weibo_media`). Raises
        `Permanent` naming the image."""
        data, _ = self.images.fetch(url, "封面图片")
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "cover.jpg"
        try:
            return weibo_picture(data, name)
        except ValueError as exc:
            raise Permanent(f"weibo: 封面图片 {url}：{exc}", code="cover_image") from None

    def _token(self) -> str:
        token = self.shared.get(TOKEN_KEY) or self.configured_token
        if not token:
            raise AuthExpired(NO_TOKEN, refreshable=False)
        return token

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One API call; the JSON object Weibo answered. Raises typed errors only, among them
        `QuotaExhausted` before calling when today's calls are spent."""
        token = self._token()
        self.budgets.spend(CALLS)
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
                "weibo", exc, write=write, message=redact(str(exc), token)
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
                raise error_for(body, resp.status_code, resp.headers.get("Retry-After"))
            answered = self._answer(
                resp, method, write=write, ok=(200, 201), absent_ok=False, elapsed=0
            )
        except ChannelError as exc:  # Weibo's text, or a proxy's, may repeat the token
            exc.message = None if exc.message is None else redact(exc.message, token)
            raise
        assert answered is not None  # absent_ok is off
        if isinstance(answered.body, dict):
            return answered.body
        explanation = f"weibo: answered {resp.status_code} with a body that is not a JSON object"
        common: dict[str, Any] = {
            "message": redact(resp.text[:500], token),
            "http_status": resp.status_code,
        }
        if write:
            raise OutcomeUnknown(explanation, **common)
        raise Retryable(explanation, **common)

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
        status_id = idstr(status)
        if not status_id:
            raise OutcomeUnknown(
                "weibo: the answer carries no status id",
                message=json.dumps(status, ensure_ascii=False)[:500],
            )
        user = status.get("user") if isinstance(status.get("user"), Mapping) else {}
        uid = str(user.get("idstr") or user.get("id") or "") if user else ""
        url = f"{self.web_base}/{uid}/{status_id}" if uid else None
        state: dict[str, Any] = {"id": status_id, UNANSWERED: [], SAID_POSTED: []}  # answered
        if rendered is not None:
            state["rendered"] = rendered
        state["earlier"] = list(earlier or [])
        return Receipt(
            status_id, url, state, content_hash=pub.content_hash if pub is not None else None
        )


def _all_ids(remote: Remote | None) -> list[str]:
    """The post and the earlier posts it corrected (newest first)."""
    if remote is None:
        return []
    earlier = remote.state.get("earlier") or []
    ids = [remote.remote_id, *(str(i) for i in earlier)]
    return list(dict.fromkeys(i for i in ids if i))


__all__ = ["DAILY_CALLS", "TOKEN_KEY", "WeiboChannel", "WeiboSettings"]
