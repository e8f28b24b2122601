"""Where a submitted WeChat article stands: publish jobs polled, the published list searched.

A submit returns a publish job, which WeChat finishes later. `WeChatLookups` holds the steps of
`WeChatChannel.lookup`: poll a job with `freepublish/get` (100 calls a day, a budget shared
by every worker: once it is spent, polls wait for midnight in Beijing; the article id a
`PUBLISHJOBFINISH` callback left under `finished_key` saves the poll once `getarticle` shows
it links to the item's page), read a recorded article by its id with `freepublish/getarticle`
(one linking elsewhere is `ForeignArticle`), and, since WeChat has no idempotency key for
publishing, search the published list (`freepublish/batchget`) for an item's own article by
its "阅读原文" link — only for an article whose id we never got, after an uncertain submit.
Correction notices (the `correction` edit policy) are polled and found the same way.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from channels.base import Publication, Receipt, Remote, SharedStore
from channels.errors import Permanent, QuotaExhausted, Retryable
from channels.wechat_calls import ARTICLE_ABSENT, WeChatCalls

PUBLISH_SUCCESS, PUBLISH_RUNNING, PUBLISH_DELETED = 0, 1, 5
PUBLISH_FAILURES = {
    2: "原创声明失败",
    3: "常规失败",
    4: "平台审核不通过",
    6: "成功后被系统封禁",
}
CORRECTION_PREFIX = "更正："


def finished_key(publish_id: str) -> str:
    """Shared-store key under which the publish callback leaves a finished job's article id."""
    return f"wechat:finished:{publish_id}"


class WeChatLookups(WeChatCalls):
    """The lookup steps of `channels.wechat.WeChatChannel`, which sets these attributes."""

    shared: SharedStore
    poll_seconds: float

    def _lookup_article(self, state: dict[str, Any], pub: Publication) -> Receipt | None:
        """The recorded article, with the hash we recorded for it (None once deleted).

        Raises `ForeignArticle` when its "阅读原文" link (`content_source_url`) is not `pub`'s
        page: an article id that came to us from a callback is a claim, and adopting another
        item's article would make retracting this item delete it.
        """
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
        source = str(items[0].get("content_source_url") or "")
        if source != (pub.website_url or ""):
            raise ForeignArticle(article_id, source, pub.website_url or "")
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
        try:
            result: dict[str, Any] = self._call(
                "freepublish/get", lambda: self.client.freepublish.get(publish_id), write=False
            )
        except QuotaExhausted as spent:
            wait = (spent.until - datetime.now(UTC)).total_seconds()
            return replace(waiting, poll_after=max(wait, self.poll_seconds))
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
        note = None
        announced = self.shared.get(finished_key(publish_id))
        if announced:
            # WeChat's PUBLISHJOBFINISH callback named the article: one `getarticle` (its own
            # budget) saves the job's `freepublish/get` budget for the polls that need it.
            # The callback only claims the article is ours; its link must agree.
            try:
                found = self._lookup_article(
                    {"article_id": announced, "content_hash": content_hash}, pub
                )
            except ForeignArticle as exc:
                self.shared.delete(finished_key(publish_id))
                found, note = None, f"回调所报{exc.note}; polled the job instead"
            except QuotaExhausted:
                found = None  # today's getarticle budget is spent: the poll decides
            if found is not None:
                return replace(
                    found, state={**found.state, "publish_id": publish_id, "publish_status": 0}
                )
        result = self._finished_job(publish_id, waiting)
        if isinstance(result, Receipt):
            return replace(result, note=note)
        status = int(result["publish_status"])
        if status == PUBLISH_DELETED:
            return None
        if status != PUBLISH_SUCCESS:
            raise publish_failed(status, result)
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
            note=note,
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
            raise publish_failed(status, result)
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
        title: str,
        *,
        correction: bool = False,
        skip: frozenset[str] | set[str] = frozenset(),
        pages: int = 5,
    ) -> Receipt | None:
        """`pub`'s own article (a correction notice for it when `correction`) among the most
        recent published ones, skipping the article ids in `skip`; `title` is the one this
        revision's article (or notice) was given.

        Only an article whose "阅读原文" link is `pub`'s website page can be `pub`'s: titles
        repeat across items ("停水通知"). Among those, one with this revision's title carries
        `pub.content_hash`; failing that, the newest one is returned with no content hash.
        """
        if not pub.website_url:
            return None
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


class ForeignArticle(Exception):
    """An article claimed to be an item's whose "阅读原文" link is another page: not ours.

    Not a `ChannelError`: the channel did nothing wrong; the adapter declines the claim and
    says why in `note` (Chinese for the staff who read attempts, then the facts).
    """

    def __init__(self, article_id: str, source: str, website_url: str) -> None:
        self.note = (
            f"微信文章 {article_id} 的“阅读原文”链接不是本条信息的页面，不是本条信息的文章，"
            f"未采用 (article {article_id} links to {source or 'nothing'}, "
            f"not to this item's page {website_url or '(none)'})"
        )
        super().__init__(self.note)


def publish_failed(status: int, result: dict[str, Any]) -> Permanent:
    """The error for a publish job WeChat finished without publishing (`publish_status`)."""
    reason = PUBLISH_FAILURES.get(status, "发布失败")
    return Permanent(
        f"wechat: WeChat did not publish the article ({reason})",
        code=f"publish_status={status}",
        message=f"{reason}; fail_idx={result.get('fail_idx', [])}",
    )
