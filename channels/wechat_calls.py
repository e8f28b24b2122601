"""Calling WeChat: every API call of the adapter goes through `WeChatCalls._call`.

`_call` first spends the endpoint's daily budget (`channels.budgets`; the defaults below are
WeChat's own quotas), so that a spent quota defers the work (`QuotaExhausted` until midnight in
Beijing) instead of making WeChat answer 45009. Then it runs one wechatpy call; a refused
access token is refreshed once (`PublisherWeChatClient.refresh_after_rejection`: without force
first) and the call retried once; everything else that can go wrong becomes one of the typed
errors of `channels.errors`. WeChat's errcodes (HTTP 200 with `{"errcode", "errmsg"}`) are
mapped through the table in `channels.wechat_codes`; an answer that is not JSON → Retryable for
a read, OutcomeUnknown for a write; a transport failure → `transport_error`.

`WeChatCalls` is the base of the adapter's parts (`channels.wechat_lookup`,
`channels.wechat_push`) and of `channels.wechat.WeChatChannel`, which sets `client` and
`budgets`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from wechatpy.exceptions import WeChatClientException

from channels.base import redact_query_secrets, transport_error
from channels.budgets import BEIJING, BudgetUse, DailyBudgets, next_beijing_midnight
from channels.errors import (
    AuthExpired,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    QuotaExhausted,
    Retryable,
)
from channels.wechat_api import FORCE_REFRESH, PublisherWeChatClient, UnexpectedAnswer
from channels.wechat_codes import ARTICLE_ABSENT, TOKEN_REFUSED, code_of

__all__ = [
    "ARTICLE_ABSENT",
    "BEIJING",
    "DAILY_LIMITS",
    "PREPARE",
    "WeChatCalls",
    "daily_limits",
    "next_beijing_midnight",
    "wechat_error",
]

# Calls a day per endpoint, as WeChat rations them for an account ("接口调用频次限制",
# https://developers.weixin.qq.com/doc/service/Message_Management/API_Call_Limits.html):
# 发布能力 — 发布接口 100, 发布状态轮询接口 100, 删除发布 10, 通过 article_id 获取已发布文章
# 100, 获取成功发布列表 100; 草稿箱 — 新建草稿 1000, 删除草稿 1000; 高级群发接口 100;
# 删除图文消息接口 10. Forced token refreshes: 20 a day ("强制刷新模式每天限用 20 次且需间隔
# 30 秒", https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken).
# `media/uploadimg` and `material/add_material` are not on the page: not rationed here.
DAILY_LIMITS: dict[str, int] = {
    "freepublish/submit": 100,
    "freepublish/get": 100,
    "freepublish/delete": 10,
    "freepublish/getarticle": 100,
    "freepublish/batchget": 100,
    "draft/add": 1000,
    "draft/delete": 1000,
    "message/mass/sendall": 100,
    "message/mass/delete": 10,
    FORCE_REFRESH: 20,
}

T = TypeVar("T")

# Uploads and drafts are invisible until submitted, and repeating them only leaves an unused
# material or draft behind: a lost answer to one is retried, not looked up (no OutcomeUnknown).
PREPARE = False


class WeChatCalls:
    """The adapter's one way to call WeChat; the subclass sets `client` and `budgets`."""

    client: PublisherWeChatClient
    budgets: DailyBudgets

    def budget_usage(self) -> list[BudgetUse]:
        return self.budgets.usage()

    def _ensure_budget(self, *endpoints: str) -> None:
        """Raise QuotaExhausted, as spending would, when today's budget for any of `endpoints`
        is spent: before the uploads and draft of a write WeChat would then be refused, and
        before the delete of a republish that could not publish again today."""
        for endpoint in endpoints:
            limit = self.budgets.limits.get(endpoint)
            if limit is not None and self.budgets.used(endpoint) >= limit:
                raise QuotaExhausted(
                    f"wechat: today's budget for {endpoint} is spent ({limit} a day); "
                    "continuing after midnight, Beijing time",
                    until=next_beijing_midnight(),
                )

    def _call(self, what: str, call: Callable[[], T], *, write: bool) -> T:
        """Run one API call to the endpoint `what` after spending its daily budget; a refused
        token is refreshed once and the call retried once.

        Raises only `channels.errors` types: QuotaExhausted, without calling, once today's
        budget for `what` is spent.
        """
        self.budgets.spend(what)
        for attempt in (1, 2):
            try:
                return call()
            except WeChatClientException as exc:
                if exc.errcode in TOKEN_REFUSED and attempt == 1:
                    self._refresh_token(what)
                    continue
                raise self._without_token(wechat_error(what, exc)) from exc
            except UnexpectedAnswer as exc:
                explanation = f"wechat: {what} answered with something that is not its JSON"
                error = OutcomeUnknown if write else Retryable
                raise self._without_token(error(explanation, message=str(exc))) from exc
            except requests.RequestException as exc:
                raise transport_error("wechat", exc, write=write, what=what) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _without_token(self, error: ChannelError) -> ChannelError:
        """`error` with the access token taken out of the channel's text: WeChat's, or a
        proxy's error page, may quote the request's URL, and the text is stored and shown."""
        if error.message:
            error.message = redact_query_secrets(error.message)
            if self.client.last_token:
                error.message = error.message.replace(self.client.last_token, "***")
        return error

    def _refresh_token(self, what: str) -> None:
        try:
            self.client.refresh_after_rejection(self.budgets)
        except WeChatClientException as exc:
            raise wechat_error("stable_token", exc) from exc
        except UnexpectedAnswer as exc:
            raise Retryable("wechat: stable_token answered oddly", message=str(exc)) from exc
        except requests.RequestException as exc:
            raise transport_error("wechat", exc, write=False, what="stable_token") from exc


def wechat_error(what: str, exc: WeChatClientException) -> ChannelError:
    """The typed error for WeChat's answer to `what`, by the kind `channels.wechat_codes` gives
    its errcode; WeChat's errcode and errmsg go with it unchanged."""
    code, message = exc.errcode, None if exc.errmsg is None else str(exc.errmsg)
    if code is None:
        status = getattr(exc.response, "status_code", None)
        common: dict[str, Any] = {"message": message, "http_status": status}
        if status is None or status >= 500 or status in (408, 429):
            return Retryable(f"wechat: {what} failed at the HTTP level ({status})", **common)
        return Permanent(f"wechat: {what} was refused at the HTTP level ({status})", **common)
    row = code_of(int(code), what)
    said = f"wechat: {what}：{row.explanation}"
    if row.kind in ("retryable", "rate_limited"):
        return Retryable(said, retry_after=row.retry_after, code=code, message=message)
    if row.kind == "quota":
        return QuotaExhausted(said, until=next_beijing_midnight(), code=code, message=message)
    if row.kind == "auth_refresh":
        said += "；刷新后仍被拒绝：请检查公众号的接口权限和 IP 白名单"
    if row.kind in ("auth_refresh", "reauthorise", "channel_level"):
        return AuthExpired(said, refreshable=False, code=code, message=message)
    return Permanent(said, code=code, message=message)


def daily_limits(overrides: Mapping[str, int]) -> dict[str, int]:
    """`DAILY_LIMITS` with `overrides` (endpoint → calls a day) laid over them."""
    return {**DAILY_LIMITS, **overrides}
