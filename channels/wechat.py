"""The WeChat official account (DESIGN §5.1): free-publish articles, retract, edit, push.

Publishing is asynchronous: `create` uploads the inline images and the cover, adds a draft and
submits it, and returns an incomplete `Receipt` holding `media_id` and `publish_id`; `lookup`
polls `freepublish/get` (100 calls a day, counted across workers) until WeChat says success
(the article's id and URL) or failure. WeChat has no idempotency key for publishing, so after
an uncertain submit `lookup` searches the published list (`freepublish/batchget`) before the
engine writes again. A published article cannot be edited: `update` deletes and republishes,
or publishes a correction notice, per `edit_policy`.

Error codes (WeChat answers HTTP 200 with `{"errcode", "errmsg"}`):
-1 busy → Retryable; 45011/53501 too frequent → Retryable with a hint; 45009 daily API quota →
QuotaExhausted until midnight in Beijing; 40001/40014/42001 token → refresh once, retry once,
then AuthExpired(refreshable=False); credentials refused → AuthExpired(refreshable=False);
anything else (45002/45003/45004 too long, 40007 bad media id, 53503 check failed…) → Permanent
with WeChat's errmsg verbatim.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Literal, Self, TypeVar

import requests
from wechatpy.exceptions import WeChatClientException

from channels import wechat_render as render
from channels.base import (
    Capability,
    Channel,
    Problem,
    Publication,
    Receipt,
    Remote,
    SharedStore,
    fetch_image,
    transport_error,
)
from channels.errors import (
    AuthExpired,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    QuotaExhausted,
    Retryable,
)
from channels.wechat_api import PublisherWeChatClient, UnexpectedAnswer

T = TypeVar("T")

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving in China

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
CREDENTIAL_ERRORS = frozenset({40013, 40125, 40164, 41004, 61024})
TOO_FREQUENT = frozenset({45011, 53501})
DAILY_QUOTA = 45009
MASS_QUOTA = 45028
MASS_DUPLICATE = 45065
ARTICLE_ABSENT = 53600

PUBLISH_SUCCESS, PUBLISH_RUNNING, PUBLISH_DELETED = 0, 1, 5
PUBLISH_FAILURES = {
    2: "原创声明失败",
    3: "常规失败",
    4: "平台审核不通过",
    6: "成功后被系统封禁",
}
EDIT_POLICIES = ("republish", "correction")
CORRECTION_PREFIX = "更正："
FREEPUBLISH_GET_PER_DAY = 100
# After a submit whose answer was lost, how long a lookup that cannot find the article yet
# keeps waiting for WeChat to finish publishing before it concludes nothing went out.
SUBMIT_SETTLE_SECONDS = 1800.0
_DEFAULT_THUMB_TTL = 7 * 24 * 3600
# Uploads and drafts are invisible until submitted, and repeating them only leaves an unused
# material or draft behind: a lost answer to one is retried, not looked up (no OutcomeUnknown).
PREPARE = False
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
    about a submitted article; `submit_settle_seconds`: see `SUBMIT_SETTLE_SECONDS`.
    """

    appid: str
    secret: str = field(repr=False)
    api_base: str = "https://api.weixin.qq.com"
    timeout: float = 10.0
    edit_policy: Literal["republish", "correction"] = "republish"
    default_author: str | None = None
    poll_seconds: float = 120.0
    submit_settle_seconds: float = SUBMIT_SETTLE_SECONDS


@dataclass(frozen=True)
class MassSend:
    """A mass send WeChat accepted (`duplicate`: it had this clientmsgid already)."""

    msg_id: str | None
    duplicate: bool = False


def next_beijing_midnight(now: datetime | None = None) -> datetime:
    """The next 00:00 in Beijing, when WeChat's daily quotas reset, as a UTC datetime."""
    local = (now or datetime.now(UTC)).astimezone(BEIJING)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), BEIJING)
    return midnight.astimezone(UTC)


class WeChatChannel(Channel):
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
    ) -> None:
        if edit_policy not in EDIT_POLICIES:
            raise ValueError(f"wechat edit policy must be one of {EDIT_POLICIES}")
        self.client = PublisherWeChatClient(
            appid, secret, api_base=api_base, shared=shared, timeout=timeout
        )
        self.shared = shared
        self.timeout = timeout
        self.edit_policy = edit_policy
        self.default_author = default_author
        self.poll_seconds = poll_seconds
        self.submit_settle_seconds = submit_settle_seconds
        self.http = requests.Session()  # for the images an item links to

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
        )

    # --- preflight --------------------------------------------------------------------------

    def preflight(self, pub: Publication) -> list[Problem]:
        """WeChat's limits: title ≤ 32, author ≤ 16, digest ≤ 128, content < 20,000 and < 1 MB."""
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
                )
            )
        if len(author) > render.AUTHOR_MAX:
            problems.append(
                self._problem(
                    "author",
                    "max_16_chars",
                    f"微信作者最多{render.AUTHOR_MAX}个字，当前{len(author)}个字",
                )
            )
        if len(pub.summary) > render.DIGEST_MAX:
            problems.append(
                self._problem(
                    "summary",
                    "max_128_chars",
                    f"微信摘要最多{render.DIGEST_MAX}个字，当前{len(pub.summary)}个字",
                )
            )
        if len(content) >= render.CONTENT_MAX_CHARS:
            problems.append(
                self._problem(
                    "body_html",
                    "under_20000_chars",
                    f"微信正文须少于{render.CONTENT_MAX_CHARS}字，当前{len(content)}字",
                )
            )
        if len(content.encode()) >= render.CONTENT_MAX_BYTES:
            problems.append(
                self._problem(
                    "body_html",
                    "under_1mb",
                    "微信正文须小于1MB，请精简正文或改用附件",
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
        article = self._article(pub)
        return self._publish([article], pub.content_hash, submit_marker(pub))

    def update(self, pub: Publication, remote: Remote) -> Receipt:
        """Published articles cannot be edited: republish, or publish a correction notice."""
        self._refuse_problems(pub)
        if self.edit_policy == "correction":
            return self._publish_correction(pub, remote)
        self.delete(remote)
        return self.create(pub)

    def delete(self, remote: Remote) -> None:
        """Delete the published article and every correction notice published for it; one
        already gone is not an error.

        The articles whose ids are recorded go first; one still being published raises
        Retryable (it can be deleted once it is out).
        """
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
        try:
            self._call(
                "freepublish/delete",
                lambda: self.client.freepublish.delete(article_id, 0),
                write=True,
            )
        except Permanent as exc:
            if exc.code != str(ARTICLE_ABSENT):
                raise

    # --- lookup -----------------------------------------------------------------------------

    def lookup(self, pub: Publication, remote: Remote | None) -> Receipt | None:
        """Where `pub` stands on WeChat.

        A correction notice being published: its job (incomplete while running). A recorded
        article showing this revision: that article. A publish job: the job (incomplete while
        running; Permanent if WeChat failed it; None if deleted). Otherwise (after an uncertain
        submit, or when the recorded article is gone or shows another revision) this
        revision's own article is searched for in the published list by its "阅读原文" link
        — a correction notice if the recorded article stays —; while this revision's submit
        may still be in progress the lookup waits; failing both, the recorded article if it
        is still there, else None.
        """
        state = dict(remote.state) if remote else {}
        if remote is not None and state.get("correction_publish_id"):
            return self._poll_correction(pub, remote, state)
        recorded: Receipt | None = None
        if state.get("article_id"):
            recorded = self._lookup_article(state)
            if recorded is not None and recorded.content_hash == pub.content_hash:
                return recorded
        elif state.get("publish_id"):
            return self._poll_publish(pub, state)
        correction = recorded is not None and self.edit_policy == "correction"
        skip = {str(i) for i in state.get("correction_article_ids") or []}
        if recorded is not None:
            skip.add(recorded.remote_id)  # it shows another revision
        found = self._find_published(pub, correction=correction, skip=skip)
        if found is not None and recorded is not None and correction:
            return self._with_correction(recorded, found, state)
        if found is not None:
            return found
        if self.shared.get(submit_marker(pub)):
            return Receipt(
                remote_id=remote.remote_id if remote else "",
                url=remote.url if remote else None,
                complete=False,
                poll_after=self.poll_seconds,
                state={"awaiting_submit": True},
            )
        return recorded

    def health(self) -> dict[str, Any]:
        return {"api_base": self.client.api_base, "edit_policy": self.edit_policy}

    def preview(self, pub: Publication) -> dict[str, Any]:
        """The article WeChat would be given (inline images are moved to its CDN on publish)."""
        title, author = self._title(pub), self._author(pub)
        content = render.wechat_html(pub.body_html)
        return {
            "title": title,
            "author": author,
            "digest": pub.summary,
            "content_html": content,
            "content_source_url": pub.website_url or "",
            "cover": pub.cover_image_url or f"default card of {pub.domain_name}",
            "inline_images": render.inline_images(content),
            "edit_policy": self.edit_policy,
            "limits": {
                "title_chars": {"used": len(title), "max": render.TITLE_MAX},
                "author_chars": {"used": len(author), "max": render.AUTHOR_MAX},
                "digest_chars": {"used": len(pub.summary), "max": render.DIGEST_MAX},
                "content_chars": {"used": len(content), "under": render.CONTENT_MAX_CHARS},
                "content_bytes": {
                    "used": len(content.encode()),
                    "under": render.CONTENT_MAX_BYTES,
                },
            },
        }

    # --- push (used by publisher.services.wechat_push) ---------------------------------------

    def create_digest_draft(self, pubs: Sequence[Publication]) -> str:
        """A draft of up to 8 articles for a mass send; returns its media_id."""
        if not 1 <= len(pubs) <= 8:
            raise ValueError("a WeChat digest holds 1 to 8 articles")
        articles = [self._article(pub) for pub in pubs]
        return self._call("draft/add", lambda: self.client.draft.add(articles), write=PREPARE)

    def mass_send(self, media_id: str, *, tag_id: str | None, clientmsgid: str) -> MassSend:
        """Send the draft to all followers (tag_id None) or one tag.

        A clientmsgid WeChat already saw (45065) counts as sent. Raises QuotaExhausted when
        the account's mass sends for today are spent (45028), OutcomeUnknown on a lost answer.
        """

        def sendall() -> dict[str, Any]:
            try:
                return self.client.mass.sendall(media_id, tag_id=tag_id, clientmsgid=clientmsgid)
            except WeChatClientException as exc:
                if exc.errcode != MASS_DUPLICATE:
                    raise
                return {"msg_id": _msg_id_of(exc), "duplicate": True}

        try:
            result = self._call("message/mass/sendall", sendall, write=True)
        except QuotaExhausted:
            raise
        except Permanent as exc:
            if exc.code == str(MASS_QUOTA):
                raise QuotaExhausted(
                    "wechat: today's mass send is used up; the digest waits for tomorrow",
                    until=next_beijing_midnight(),
                    code=exc.code,
                    message=exc.message,
                ) from exc
            raise
        msg_id = result.get("msg_id")
        return MassSend(
            msg_id=None if msg_id is None else str(msg_id),
            duplicate=bool(result.get("duplicate")),
        )

    def mass_status(self, msg_id: str) -> str:
        """WeChat's status of a mass send (e.g. SEND_SUCCESS, SENDING, SEND_FAIL, DELETE)."""
        result = self._call("message/mass/get", lambda: self.client.mass.get(msg_id), write=False)
        return str(result["msg_status"])

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
            },
        )

    def _article(self, pub: Publication) -> dict[str, Any]:
        """One draft article: inline images moved to WeChat's CDN, cover uploaded as thumb."""
        content = render.wechat_html(pub.body_html)
        new_urls = {url: self._upload_inline(url) for url in render.inline_images(content)}
        return {
            "title": self._title(pub),
            "author": self._author(pub),
            "digest": pub.summary,
            "content": render.replace_images(content, new_urls),
            "content_source_url": pub.website_url or "",
            "thumb_media_id": self._thumb(pub),
            "need_open_comment": 0,
            "only_fans_can_comment": 0,
        }

    def _upload_inline(self, url: str) -> str:
        data = self._download(url, "inline image")
        try:
            image, filename, mime = render.inline_image(data)
        except ValueError as exc:
            raise Permanent(
                f"wechat: the inline image {url} is not an image", message=str(exc)
            ) from exc
        return self._call(
            "media/uploadimg",
            lambda: self.client.uploads.upload_image(image, filename, mime),
            write=PREPARE,
        )

    def _thumb(self, pub: Publication) -> str:
        """The cover's thumb media_id: the item's own cover, or the domain's default card."""
        if pub.cover_image_url:
            data = self._download(pub.cover_image_url, "cover image")
            try:
                jpeg = render.cover_jpeg(data)
            except ValueError as exc:
                raise Permanent(
                    f"wechat: the cover {pub.cover_image_url} is not an image", message=str(exc)
                ) from exc
            return self._call(
                "material/add_material", lambda: self.client.uploads.add_thumb(jpeg), write=PREPARE
            )
        # One default card per domain serves every item of it: permanent material is finite.
        key = f"wechat:default_thumb:{pub.domain_code}"
        cached = self.shared.get(key)
        if cached:
            return cached
        card = render.default_cover(pub.domain_code, pub.domain_name)
        media_id = self._call(
            "material/add_material", lambda: self.client.uploads.add_thumb(card), write=PREPARE
        )
        self.shared.set(key, media_id, ttl_seconds=_DEFAULT_THUMB_TTL)
        return media_id

    def _download(self, url: str, what: str) -> bytes:
        data, _ = fetch_image(self.http, url, channel="wechat", what=what, timeout=self.timeout)
        return data

    # --- lookup steps -----------------------------------------------------------------------

    def _lookup_article(self, state: dict[str, Any]) -> Receipt | None:
        """The recorded article, with the hash we recorded for it (None once deleted)."""
        article_id = str(state["article_id"])
        try:
            result = self._call(
                "freepublish/getarticle",
                lambda: self.client.freepublish.getarticle(article_id),
                write=False,
            )
        except Permanent as exc:
            if exc.code == str(ARTICLE_ABSENT):
                return None
            raise
        items = [item for item in result["news_item"] if not item.get("is_deleted")]
        if not items:
            return None
        content_hash = state.get("content_hash")
        return Receipt(
            remote_id=article_id,
            url=items[0].get("url"),
            complete=True,
            content_hash=None if content_hash is None else str(content_hash),
            state={"article_id": article_id, "content_hash": content_hash},
        )

    def _finished_job(self, publish_id: str, waiting: Receipt) -> dict[str, Any] | Receipt:
        """The job's `freepublish/get` answer once it has finished; else `waiting` (still
        running), or `waiting` until the day's polls come back (spent: no call is made)."""
        wait = self.shared.take_slot("wechat:freepublish_get", FREEPUBLISH_GET_PER_DAY, 86400)
        if wait is not None:
            return replace(waiting, poll_after=max(wait, self.poll_seconds))
        result: dict[str, Any] = self._call(
            "freepublish/get", lambda: self.client.freepublish.get(publish_id), write=False
        )
        if int(result["publish_status"]) == PUBLISH_RUNNING:
            return waiting
        return result

    def _poll_publish(self, pub: Publication, state: dict[str, Any]) -> Receipt | None:
        publish_id = str(state["publish_id"])
        content_hash = state.get("content_hash") or pub.content_hash
        waiting = Receipt(
            remote_id=publish_id,
            complete=False,
            poll_after=self.poll_seconds,
            content_hash=content_hash,
            state={"publish_id": publish_id},
        )
        announced = self.shared.get(finished_key(publish_id))
        if announced:
            # WeChat's PUBLISHJOBFINISH callback named the article: `getarticle` is not
            # rationed, so the job's 100-a-day `freepublish/get` budget is kept for polls.
            found = self._lookup_article({"article_id": announced, "content_hash": content_hash})
            if found is not None:
                return replace(
                    found, state={**found.state, "publish_id": publish_id, "publish_status": 0}
                )
        result = self._finished_job(publish_id, waiting)
        if isinstance(result, Receipt):
            return result
        status = int(result["publish_status"])
        if status == PUBLISH_DELETED:
            return None
        if status != PUBLISH_SUCCESS:
            raise _publish_failed(status, result)
        article_id = str(result["article_id"])
        items = result.get("article_detail", {}).get("item", [])
        url = items[0].get("article_url") if items else None
        return Receipt(
            remote_id=article_id,
            url=url,
            complete=True,
            content_hash=content_hash,
            state={
                "publish_id": publish_id,
                "article_id": article_id,
                "publish_status": 0,
                "content_hash": content_hash,
            },
        )

    def _poll_correction(
        self, pub: Publication, remote: Remote, state: dict[str, Any]
    ) -> Receipt | None:
        """The correction notice's job: incomplete while running, then the article with the
        notice's article id recorded. Raises Permanent if WeChat failed the notice."""
        publish_id = str(state["correction_publish_id"])
        waiting = Receipt(
            remote_id=remote.remote_id,
            url=remote.url,
            complete=False,
            poll_after=self.poll_seconds,
            content_hash=pub.content_hash,
        )
        result = self._finished_job(publish_id, waiting)
        if isinstance(result, Receipt):
            return result
        status = int(result["publish_status"])
        corrections = [str(i) for i in state.get("correction_article_ids") or []]
        content_hash: str | None = pub.content_hash
        if status == PUBLISH_SUCCESS:
            corrections.append(str(result["article_id"]))
        elif status == PUBLISH_DELETED:
            # Someone removed the notice: the article shows the revision it showed before.
            recorded_hash = state.get("content_hash")
            content_hash = None if recorded_hash is None else str(recorded_hash)
        else:
            raise _publish_failed(status, result)
        return Receipt(
            remote_id=remote.remote_id,
            url=remote.url,
            complete=True,
            content_hash=content_hash,
            state={
                "correction_publish_id": None,
                "correction_article_ids": corrections,
                "content_hash": content_hash,
            },
        )

    def _with_correction(
        self, recorded: Receipt, notice: Receipt, state: dict[str, Any]
    ) -> Receipt:
        """The recorded article, corrected by the `notice` found in the published list."""
        corrections = [str(i) for i in state.get("correction_article_ids") or []]
        return Receipt(
            remote_id=recorded.remote_id,
            url=recorded.url,
            complete=True,
            content_hash=notice.content_hash,
            state={
                "article_id": recorded.remote_id,
                "content_hash": notice.content_hash,
                "correction_publish_id": None,
                "correction_article_ids": [*corrections, notice.remote_id],
            },
        )

    def _article_id_of(self, publish_id: str) -> str | None:
        """The article of a publish job (None if it failed or was deleted).

        Raises Retryable while WeChat is still publishing it.
        """
        result = self._call(
            "freepublish/get", lambda: self.client.freepublish.get(publish_id), write=False
        )
        status = int(result["publish_status"])
        if status == PUBLISH_RUNNING:
            raise Retryable(
                "wechat: the article is still being published; it can be deleted once it is out",
                retry_after=self.poll_seconds,
            )
        return str(result["article_id"]) if status == PUBLISH_SUCCESS else None

    def _find_published(
        self,
        pub: Publication,
        *,
        correction: bool = False,
        skip: frozenset[str] | set[str] = frozenset(),
        pages: int = 5,
    ) -> Receipt | None:
        """`pub`'s own article (a correction notice for it when `correction`) among the most
        recent published ones, skipping the article ids in `skip`.

        Only an article whose "阅读原文" link is `pub`'s website page can be `pub`'s: titles
        repeat across items ("停水通知"). Among those, one with this revision's title carries
        `pub.content_hash`; failing that, the newest one is returned with no content hash.
        """
        if not pub.website_url:
            return None
        title = self._correction_title(pub) if correction else self._title(pub)
        by_link: Receipt | None = None
        for page in range(pages):
            result = self._call(
                "freepublish/batchget",
                lambda page=page: self.client.freepublish.batchget(page * 20, 20, True),  # type: ignore[misc]
                write=False,
            )
            entries = result.get("item", [])
            for entry in entries:
                article_id = str(entry["article_id"])
                if article_id in skip:
                    continue
                for news in entry.get("content", {}).get("news_item", []):
                    if news.get("is_deleted") or news.get("content_source_url") != pub.website_url:
                        continue
                    same = news.get("title") == title
                    notice = str(news.get("title", "")).startswith(CORRECTION_PREFIX)
                    if not same and notice != correction:
                        continue
                    content_hash = pub.content_hash if same else None
                    receipt = Receipt(
                        remote_id=article_id,
                        url=news.get("url"),
                        complete=True,
                        content_hash=content_hash,
                        state={
                            "article_id": article_id,
                            "publish_status": 0,
                            "content_hash": content_hash,
                        },
                    )
                    if same:
                        return receipt
                    by_link = by_link or receipt
            if len(entries) < 20:
                break
        return by_link

    # --- calls and errors -------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T], *, write: bool) -> T:
        """Run one API call; a refused token is refreshed once and the call retried once.

        Raises only `channels.errors` types.
        """
        for attempt in (1, 2):
            try:
                return call()
            except WeChatClientException as exc:
                if exc.errcode in TOKEN_ERRORS and attempt == 1:
                    self._refresh_token(what)
                    continue
                raise self._error(what, exc) from exc
            except UnexpectedAnswer as exc:
                explanation = f"wechat: {what} answered with something that is not its JSON"
                if write:
                    raise OutcomeUnknown(explanation, message=str(exc)) from exc
                raise Retryable(explanation, message=str(exc)) from exc
            except requests.RequestException as exc:
                raise transport_error("wechat", exc, write=write, what=what) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _refresh_token(self, what: str) -> None:
        try:
            self.client.refresh_after_rejection()
        except WeChatClientException as exc:
            raise self._error("stable_token", exc) from exc
        except UnexpectedAnswer as exc:
            raise Retryable("wechat: stable_token answered oddly", message=str(exc)) from exc
        except requests.RequestException as exc:
            raise transport_error("wechat", exc, write=False, what="stable_token") from exc

    def _error(self, what: str, exc: WeChatClientException) -> ChannelError:
        code, message = exc.errcode, None if exc.errmsg is None else str(exc.errmsg)
        if code is None:
            status = getattr(exc.response, "status_code", None)
            common: dict[str, Any] = {"message": message, "http_status": status}
            if status is None or status >= 500 or status in (408, 429):
                return Retryable(f"wechat: {what} failed at the HTTP level ({status})", **common)
            return Permanent(f"wechat: {what} was refused at the HTTP level ({status})", **common)
        code = int(code)
        if code == -1:
            return Retryable(f"wechat: WeChat is busy ({what})", code=code, message=message)
        if code in TOO_FREQUENT:
            return Retryable(
                f"wechat: {what} called too often; slowing down",
                retry_after=60.0,
                code=code,
                message=message,
            )
        if code == DAILY_QUOTA:
            return QuotaExhausted(
                f"wechat: today's API quota for {what} is spent; continuing after midnight",
                until=next_beijing_midnight(),
                code=code,
                message=message,
            )
        if code in TOKEN_ERRORS:
            return AuthExpired(
                "wechat: WeChat refused a freshly refreshed access token; "
                "check the account's API permissions and IP whitelist",
                refreshable=False,
                code=code,
                message=message,
            )
        if code in CREDENTIAL_ERRORS:
            return AuthExpired(
                "wechat: WeChat refused the AppID or secret; "
                "check PUBLISHER_WECHAT_APPID / PUBLISHER_WECHAT_SECRET and the IP whitelist",
                refreshable=False,
                code=code,
                message=message,
            )
        return Permanent(f"wechat: WeChat refused {what}", code=code, message=message)

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
        return pub.short_title or pub.title

    def _correction_title(self, pub: Publication) -> str:
        return render.clip(CORRECTION_PREFIX + self._title(pub), render.TITLE_MAX)

    def _author(self, pub: Publication) -> str:
        return self.default_author or pub.department_name

    def _problem(self, field: str, rule: str, message: str) -> Problem:
        return Problem(channel=self.kind, field=field, rule=rule, message=message)


def submit_marker(pub: Publication) -> str:
    """The shared-store key saying a submit of this revision of `pub` may be in progress."""
    return f"wechat:submitting:{pub.external_id}:{pub.content_hash}"


def _publish_failed(status: int, result: dict[str, Any]) -> Permanent:
    reason = PUBLISH_FAILURES.get(status, "发布失败")
    return Permanent(
        f"wechat: WeChat did not publish the article ({reason})",
        code=f"publish_status={status}",
        message=f"{reason}; fail_idx={result.get('fail_idx', [])}",
    )


def finished_key(publish_id: str) -> str:
    """Shared-store key under which the publish callback leaves a finished job's article id."""
    return f"wechat:finished:{publish_id}"


def digest_clientmsgid(day: str, audience: str, article_ids: Sequence[str]) -> str:
    """The clientmsgid of a digest: the same digest always gets the same id (≤ 64 chars)."""
    basis = json.dumps([day, audience, sorted(article_ids)], separators=(",", ":"))
    return f"d{day.replace('-', '')}-{hashlib.sha256(basis.encode()).hexdigest()[:48]}"


def _msg_id_of(exc: WeChatClientException) -> str | None:
    try:
        body = exc.response.json() if exc.response is not None else {}
    except ValueError:
        return None
    msg_id = body.get("msg_id") if isinstance(body, dict) else None
    return None if msg_id is None else str(msg_id)
