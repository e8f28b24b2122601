"""The WeChat official account (docs/protocols.md §5): free-publish articles, retract, edit, push.

Publishing is asynchronous: `create` uploads the inline images and the cover, adds a draft and
submits it, and returns an incomplete `Receipt` holding `media_id` and `publish_id`; `lookup`
polls `freepublish/get` (100 calls a day, counted across workers) until WeChat says success
(the article's id and URL) or failure. WeChat has no idempotency key for publishing, so after
an uncertain submit `lookup` searches the published list (`freepublish/batchget`) before the
engine writes again. A published article cannot be edited: `update` deletes and republishes,
or publishes a correction notice, per `edit_policy`.

This module is the adapter: `WeChatChannel`, its settings, preflight, the writes, `lookup`
and the drafts it builds. Its parts live beside it, each a base class of `WeChatChannel`:
- `channels.wechat_calls`: `_call`, and WeChat's errcodes mapped onto `channels.errors`
  (-1 busy → Retryable, 45009 → QuotaExhausted until midnight in Beijing, a refused token
  refreshed once, …);
- `channels.wechat_lookup`: the steps of `lookup` (publish jobs polled, the published list
  searched);
- `channels.wechat_materials`: cover thumbs, one per distinct cover, deleted when unused;
- `channels.wechat_push`: the daily digest's draft and mass send, and deleting its copies.
The names other modules use stay importable from here (`__all__`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Self

from channels import wechat_render as render
from channels.base import (
    Capability,
    Channel,
    Problem,
    Publication,
    Receipt,
    Remote,
    SharedStore,
)
from channels.budgets import DailyBudgets
from channels.errors import ChannelError, OutcomeUnknown, Permanent
from channels.fetch import FetchPolicy, ImageFetcher, shown_url
from channels.wechat_api import PublisherWeChatClient
from channels.wechat_calls import ARTICLE_ABSENT, BEIJING, DAILY_LIMITS, PREPARE
from channels.wechat_lookup import CORRECTION_PREFIX, ForeignArticle, WeChatLookups, finished_key
from channels.wechat_materials import WeChatMaterials
from channels.wechat_push import WeChatPush, digest_clientmsgid

__all__ = [
    "BEIJING",
    "WeChatChannel",
    "WeChatSettings",
    "digest_clientmsgid",
    "finished_key",
    "submit_marker",
]

EDIT_POLICIES = ("republish", "correction")
# After a submit whose answer was lost, how long a lookup that cannot find the article yet
# keeps waiting for WeChat to finish publishing before it concludes nothing went out.
SUBMIT_SETTLE_SECONDS = 1800.0
# How long a deleted article is remembered, so that a retraction retried does not delete again.
DELETED_MEMORY_SECONDS = 7 * 24 * 3600.0
# What WeChat itself answers for each preflight rule, so a refusal reads the same either way.
PREFLIGHT_ERRORS = {
    "max_32_chars": (45003, "title size out of limit"),
    "max_16_chars": (45110, "author size out of limit"),
    "max_128_chars": (45004, "description size out of limit"),
    "under_20000_chars": (45002, "content size out of limit"),
    "under_1mb": (45002, "content size out of limit"),
}


@dataclass(frozen=True)
class WeChatSettings:
    """What the WeChat adapter needs: the account's credentials, the API, and its policies.

    `default_author` None: the department's name; `poll_seconds`: how often `lookup` asks
    about a submitted article; `submit_settle_seconds`: see `SUBMIT_SETTLE_SECONDS`; `fetch`:
    what may be downloaded of the images an item links to (`channels.fetch`); `daily_limits`:
    calls a day per endpoint (`channels.wechat_calls.DAILY_LIMITS`, WeChat's own quotas).
    """

    appid: str
    secret: str = field(repr=False)
    api_base: str = "https://api.weixin.qq.com"
    timeout: float = 10.0
    edit_policy: Literal["republish", "correction"] = "republish"
    default_author: str | None = None
    poll_seconds: float = 120.0
    submit_settle_seconds: float = SUBMIT_SETTLE_SECONDS
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    daily_limits: Mapping[str, int] = field(default_factory=lambda: dict(DAILY_LIMITS))


class WeChatChannel(WeChatLookups, WeChatPush, WeChatMaterials, Channel):
    """The adapter; `lookup`'s steps come from `WeChatLookups`, the digest's calls from
    `WeChatPush`, the thumbs from `WeChatMaterials`, and `_call` from their base
    `WeChatCalls`."""

    kind: ClassVar[str] = "wechat"
    title: ClassVar[str] = "微信公众号"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    needs_website_url: ClassVar[bool] = True

    def __init__(
        self,
        *,
        appid: str,
        secret: str,
        api_base: str,
        shared: SharedStore,
        timeout: float = 10.0,
        edit_policy: str = "republish",
        default_author: str | None = None,
        poll_seconds: float = 120.0,
        submit_settle_seconds: float = SUBMIT_SETTLE_SECONDS,
        fetch: FetchPolicy | None = None,
        daily_limits: Mapping[str, int] = DAILY_LIMITS,
    ) -> None:
        if edit_policy not in EDIT_POLICIES:
            raise ValueError(f"wechat edit policy must be one of {EDIT_POLICIES}")
        self.client = PublisherWeChatClient(
            appid, secret, api_base=api_base, shared=shared, timeout=timeout
        )
        self.shared = shared
        self.budgets = DailyBudgets(shared, self.kind, daily_limits)
        self.timeout = timeout
        self.edit_policy = edit_policy
        self.default_author = default_author
        self.poll_seconds = poll_seconds
        self.submit_settle_seconds = submit_settle_seconds
        self.images = ImageFetcher(fetch or FetchPolicy(), channel=self.kind, timeout=timeout)

    @classmethod
    def state_without_refused_job(cls, state: Mapping[str, Any]) -> dict[str, Any]:
        """WeChat did not publish the job (or the correction notice) we waited on: forget its
        id, so that a retry or an edit submits anew instead of polling a dead job."""
        return {k: v for k, v in state.items() if k not in ("publish_id", "correction_publish_id")}

    @classmethod
    def from_settings(cls, settings: WeChatSettings, shared: SharedStore) -> Self:
        """The adapter for `settings`; `shared` holds the access token and the counters."""
        return cls(
            appid=settings.appid,
            secret=settings.secret,
            api_base=settings.api_base,
            shared=shared,
            timeout=settings.timeout,
            edit_policy=settings.edit_policy,
            default_author=settings.default_author,
            poll_seconds=settings.poll_seconds,
            submit_settle_seconds=settings.submit_settle_seconds,
            fetch=settings.fetch,
            daily_limits=settings.daily_limits,
        )

    # --- preflight --------------------------------------------------------------------------

    def preflight(self, pub: Publication) -> list[Problem]:
        """WeChat's limits: title ≤ 32, author ≤ 16, digest ≤ 128 (the editor's own; a summary
        is cut to fit), content < 20,000 characters and < 1 MB."""
        problems: list[Problem] = []
        title, author = self._title(pub), self._author(pub)
        content = render.wechat_html(pub.body_html)
        if len(title) > render.TITLE_MAX:
            problems.append(
                self._problem(
                    "title",
                    "max_32_chars",
                    f"微信标题最多{render.TITLE_MAX}个字，当前{len(title)}个字：请填写不超过"
                    f"{render.TITLE_MAX}个字的短标题",
                    limit=render.TITLE_MAX,
                    length=len(title),
                )
            )
        if len(author) > render.AUTHOR_MAX:
            problems.append(
                self._problem(
                    "author",
                    "max_16_chars",
                    f"微信作者最多{render.AUTHOR_MAX}个字，当前{len(author)}个字",
                    limit=render.AUTHOR_MAX,
                    length=len(author),
                )
            )
        # Only the editor's own digest can be too long: a summary is cut to fit (`digest_of`).
        digest = self._digest(pub)
        if not digest.automatic and len(digest.text) > render.DIGEST_MAX:
            problems.append(
                self._problem(
                    "wechat_digest",
                    "max_128_chars",
                    f"微信摘要最多{render.DIGEST_MAX}个字，当前{len(digest.text)}个字",
                    limit=render.DIGEST_MAX,
                    length=len(digest.text),
                )
            )
        if len(content) >= render.CONTENT_MAX_CHARS:
            problems.append(
                self._problem(
                    "body_html",
                    "under_20000_chars",
                    f"微信正文须少于{render.CONTENT_MAX_CHARS}字，当前{len(content)}字",
                    limit=render.CONTENT_MAX_CHARS,
                    length=len(content),
                )
            )
        if len(content.encode()) >= render.CONTENT_MAX_BYTES:
            problems.append(
                self._problem(
                    "body_html",
                    "under_1mb",
                    "微信正文须小于1MB，请精简正文或改用附件",
                    limit=render.CONTENT_MAX_BYTES,
                )
            )
        return problems

    # --- writes -----------------------------------------------------------------------------

    def create(self, pub: Publication) -> Receipt:
        """Draft and submit `pub`; returns an incomplete Receipt (poll with `lookup`).

        Raises Permanent for what preflight refuses, and OutcomeUnknown when the submit's
        answer was lost (look up before writing again).
        """
        self._refuse_problems(pub)
        self._ensure_budget("draft/add", "freepublish/submit")
        article = self._article(pub)
        receipt = self._publish([article], pub.content_hash, submit_marker(pub))
        thumbs = {"thumb_user": pub.external_id, "thumbs": [article["thumb_media_id"]]}
        return replace(receipt, state={**receipt.state, **thumbs})

    def update(self, pub: Publication, remote: Remote) -> Receipt:
        """Published articles cannot be edited: republish, or publish a correction notice."""
        self._refuse_problems(pub)
        self._ensure_budget("draft/add", "freepublish/submit")
        if self.edit_policy == "correction":
            return self._publish_correction(pub, remote)
        self._ensure_budget("freepublish/delete")  # not deleted unless it can be republished
        self._delete_articles(remote)
        receipt = self.create(pub)
        self.release_thumbs(remote.state, keep=receipt.state["thumbs"])
        return receipt

    def delete(self, remote: Remote) -> None:
        """Withdraw everything of the item: the published article, every correction notice
        published for it, the copies a digest mass-sent, and its thumbs once no other
        article uses them. What is already gone is not an error.
        """
        self._delete_articles(remote)
        self.delete_mass_copies(remote.state)
        self.release_thumbs(remote.state)

    def _delete_articles(self, remote: Remote) -> None:
        """The articles whose ids are recorded go first; one still being published raises
        Retryable (it can be deleted once it is out)."""
        state = remote.state
        known = [state.get("article_id"), *(state.get("correction_article_ids") or [])]
        # Jobs whose article id is not recorded yet (notices recorded by publish id only
        # before article ids were kept, too).
        jobs = [
            None if state.get("article_id") else state.get("publish_id"),
            state.get("correction_publish_id"),
            *(state.get("correction_publish_ids") or []),
        ]
        for article_id in dict.fromkeys(str(i) for i in known if i):
            self._delete_article(article_id)
        for publish_id in dict.fromkeys(str(j) for j in jobs if j):
            published = self._article_id_of(publish_id)
            if published:
                self._delete_article(published)

    def _delete_article(self, article_id: str) -> None:
        """Delete one article, once: a retraction that comes back (for a pushed copy still
        being sent, say) does not spend `freepublish/delete`'s 10 calls a day on it again."""
        deleted = f"wechat:article_deleted:{article_id}"
        if self.shared.get(deleted):
            return
        try:
            self._call(
                "freepublish/delete",
                lambda: self.client.freepublish.delete(article_id, 0),
                write=True,
            )
        except Permanent as exc:
            if exc.code != str(ARTICLE_ABSENT):
                raise
        self.shared.set(deleted, "1", ttl_seconds=DELETED_MEMORY_SECONDS)

    # --- lookup -----------------------------------------------------------------------------

    def lookup(self, pub: Publication, remote: Remote | None) -> Receipt | None:
        """Where `pub` stands on WeChat.

        A correction notice being published: its job (incomplete while running). A recorded
        article showing this revision: that article. A publish job: the job (incomplete while
        running; Permanent if WeChat failed it; None if deleted). Otherwise (after an uncertain
        submit, or when the recorded article is gone or shows another revision) this
        revision's own article is searched for in the published list by its "阅读原文" link
        — but not when the gone article was this revision's own (its id held: `getarticle`
        said enough) —
        — a correction notice if the recorded article stays —; while this revision's submit
        may still be in progress the lookup waits; failing both, the recorded article if it
        is still there, else None.
        """
        state = dict(remote.state) if remote else {}
        if remote is not None and state.get("correction_publish_id"):
            return self._poll_correction(pub, remote, state)
        recorded: Receipt | None = None
        note = None
        if state.get("article_id"):
            try:
                recorded = self._lookup_article(state, pub)
            except ForeignArticle as exc:  # recorded from a forged callback: search for ours
                note = exc.note
            if recorded is not None and recorded.content_hash == pub.content_hash:
                return recorded
            if recorded is None and note is None and not self._may_be_elsewhere(pub, state):
                return None  # this revision's article, known by its id, is gone
        elif state.get("publish_id"):
            return self._poll_publish(pub, state)
        correction = recorded is not None and self.edit_policy == "correction"
        skip = {str(i) for i in state.get("correction_article_ids") or []}
        if recorded is not None:
            skip.add(recorded.remote_id)  # it shows another revision
        title = self._correction_title(pub) if correction else self._title(pub)
        found = self._find_published(pub, title, correction=correction, skip=skip)
        if found is not None and recorded is not None and correction:
            return self._with_correction(recorded, found, state)
        if found is not None:
            return replace(found, note=note)
        if self.shared.get(submit_marker(pub)):
            return Receipt(
                remote_id=remote.remote_id if remote else "",
                url=remote.url if remote else None,
                complete=False,
                poll_after=self.poll_seconds,
                state={"awaiting_submit": True},
                note=note,
            )
        return recorded

    def _may_be_elsewhere(self, pub: Publication, state: dict[str, Any]) -> bool:
        """Whether `pub`'s article may be one whose id we never got: the recorded article
        shows another revision (an edit's answer was lost), or a submit may be in progress.
        Only then is the published list searched (`freepublish/batchget`, rationed)."""
        return state.get("content_hash") != pub.content_hash or bool(
            self.shared.get(submit_marker(pub))
        )

    def health(self) -> dict[str, Any]:
        return {
            "api_base": self.client.api_base,
            "edit_policy": self.edit_policy,
            "materials": self.materials_held(),
        }

    def preview(self, pub: Publication) -> dict[str, Any]:
        """The article WeChat would be given (inline images are moved to its CDN on publish)."""
        title, author = self._title(pub), self._author(pub)
        content = render.wechat_html(pub.body_html)
        digest = self._digest(pub)
        return {
            "title": title,
            "author": author,
            "digest": digest.text,
            "digest_source": digest.source,
            "digest_automatic": digest.automatic,
            "digest_cut": digest.cut,
            "content_html": content,
            "content_source_url": pub.website_url or "",
            "cover": pub.cover_image_url or f"default card of {pub.domain_name}",
            "inline_images": render.inline_images(content),
            "edit_policy": self.edit_policy,
            "limits": {
                "title_chars": {"used": len(title), "max": render.TITLE_MAX},
                "author_chars": {"used": len(author), "max": render.AUTHOR_MAX},
                "digest_chars": {"used": len(digest.text), "max": render.DIGEST_MAX},
                "content_chars": {"used": len(content), "under": render.CONTENT_MAX_CHARS},
                "content_bytes": {
                    "used": len(content.encode()),
                    "under": render.CONTENT_MAX_BYTES,
                },
            },
        }

    # --- publishing steps -------------------------------------------------------------------

    def _publish(
        self, articles: list[dict[str, Any]], content_hash: str, marker: str | None = None
    ) -> Receipt:
        media_id = self._call("draft/add", lambda: self.client.draft.add(articles), write=PREPARE)
        # A lost submit answer leaves a job WeChat may still be publishing, which batchget does
        # not list yet: remember the submit so that a lookup waits instead of reporting absence.
        if marker:
            self.shared.set(marker, content_hash, ttl_seconds=self.submit_settle_seconds)
        try:
            publish_id = self._call(
                "freepublish/submit", lambda: self.client.freepublish.submit(media_id), write=True
            )
        except OutcomeUnknown:
            raise  # the job may be running: the marker keeps a lookup waiting for it
        except ChannelError:
            if marker:  # refused before it took effect: nothing to wait for
                self.shared.delete(marker)
            raise
        if marker:
            self.shared.delete(marker)
        return Receipt(
            remote_id=publish_id,
            complete=False,
            poll_after=self.poll_seconds,
            content_hash=content_hash,
            state={
                "media_id": media_id,
                "publish_id": publish_id,
                "article_id": None,
                "content_hash": content_hash,
            },
        )

    def _publish_correction(self, pub: Publication, remote: Remote) -> Receipt:
        """Keep the published article and publish a short notice pointing at the website.

        Returns an incomplete Receipt still naming the article: `lookup` polls the notice's
        job and records its article id (so that a retraction deletes it too).
        """
        notice = (
            f"<p>《{pub.title}》已于{pub.publish_date:%Y年%m月%d日}更正，"
            "内容以官方网站发布的最新版本为准。</p>"
            f"<p>请点击“阅读原文”查看：{pub.website_url or ''}</p>"
        )
        article = {
            **self._article(pub),
            "title": self._correction_title(pub),
            "digest": render.clip(f"更正：{pub.title}", render.DIGEST_MAX),
            "content": notice,
        }
        published = self._publish([article], pub.content_hash, submit_marker(pub))
        return Receipt(
            remote_id=remote.remote_id,
            url=remote.url,
            complete=False,
            poll_after=self.poll_seconds,
            content_hash=pub.content_hash,
            state={
                "correction_publish_id": published.remote_id,
                "correction_article_ids": list(remote.state.get("correction_article_ids") or []),
                "thumb_user": pub.external_id,
                "thumbs": list(
                    dict.fromkeys([*(remote.state.get("thumbs") or []), article["thumb_media_id"]])
                ),
            },
        )

    def _article(self, pub: Publication) -> dict[str, Any]:
        """One draft article: inline images moved to WeChat's CDN, cover uploaded as thumb.

        Raises `Permanent` naming the image for one that cannot be fetched or read, and for
        more images than the fetch policy allows (before any is fetched).
        """
        content = render.wechat_html(pub.body_html)
        sources = render.inline_images(content)
        self.images.check_count(len(sources) + bool(pub.cover_image_url))
        new_urls = {
            url: self._upload_inline(url, f"正文第 {number} 张图片")
            for number, url in enumerate(sources, start=1)
        }
        return {
            "title": self._title(pub),
            "author": self._author(pub),
            "digest": self._digest(pub).text,
            "content": render.replace_images(content, new_urls),
            "content_source_url": pub.website_url or "",
            "thumb_media_id": self._thumb(pub),
            "need_open_comment": 0,
            "only_fans_can_comment": 0,
        }

    def _upload_inline(self, url: str, what: str) -> str:
        data, _ = self.images.fetch(url, what)
        try:
            image, filename, mime = render.inline_image(data)
        except ValueError as exc:
            raise Permanent(f"wechat: {what} {shown_url(url)}：{exc}") from None
        return self._call(
            "media/uploadimg",
            lambda: self.client.uploads.upload_image(image, filename, mime),
            write=PREPARE,
        )

    def _thumb(self, pub: Publication) -> str:
        """The cover's thumb media_id: the item's own cover, or the domain's default card;
        the same picture is one material, whichever items show it (`WeChatMaterials`)."""
        if not pub.cover_image_url:
            card = render.default_cover(pub.domain_code, pub.domain_name)
            return self.thumb_for(card, pub.external_id)
        data, _ = self.images.fetch(pub.cover_image_url, "封面图片")
        try:
            jpeg = render.cover_jpeg(data)
        except ValueError as exc:
            shown = shown_url(pub.cover_image_url)
            raise Permanent(f"wechat: 封面图片 {shown}：{exc}") from None
        return self.thumb_for(jpeg, pub.external_id)

    # --- titles and refusals ----------------------------------------------------------------

    def _refuse_problems(self, pub: Publication) -> None:
        problems = self.preflight(pub)
        if problems:
            errors = [(PREFLIGHT_ERRORS[p.rule], p) for p in problems]
            raise Permanent(
                "wechat: " + "；".join(p.message for p in problems),
                code=errors[0][0][0],
                message="; ".join(f"{p.field}: {errmsg}" for (_, errmsg), p in errors),
            )

    def _title(self, pub: Publication) -> str:
        return pub.title_for(self.kind)

    def _digest(self, pub: Publication) -> render.Digest:
        return render.digest_of(pub.wechat_digest, pub.summary, pub.body_html)

    def _correction_title(self, pub: Publication) -> str:
        return render.clip(CORRECTION_PREFIX + self._title(pub), render.TITLE_MAX)

    def _author(self, pub: Publication) -> str:
        return self.default_author or pub.department_name

    def _problem(self, field: str, rule: str, message: str, **values: Any) -> Problem:
        return Problem(channel=self.kind, field=field, rule=rule, message=message, values=values)


def submit_marker(pub: Publication) -> str:
    """The shared-store key saying a submit of this revision of `pub` may be in progress."""
    return f"wechat:submitting:{pub.external_id}:{pub.content_hash}"
