"""zh-CN names of channels, delivery states and error kinds, why a delivery waits, and times
as staff read them: Beijing time (UTC+8, no daylight saving), to the second.

`waiting_reason` reads a delivery as the read models show it (`publisher.services.queries.
delivery_view`): every delivery that is not live, withdrawn or cancelled says why, and until
when where a time is known. The channel's own error text is shown as it came, never
translated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from publisher.i18n.fill import fill

MESSAGES: dict[str, str] = {
    "channel.website": "网站",
    "channel.catalogue": "政务公开目录",
    "channel.wechat": "微信公众号",
    "channel.weibo": "微博",
    "state.pending": "排队中",
    "state.running": "发送中",
    "state.retrying": "待重试",
    "state.deferred": "已推迟",
    "state.live": "已上线",
    "state.withdrawn": "已撤下",
    "state.failed": "失败",
    "state.unknown": "待核实",
    "state.cancelled": "已取消",
    "state.confirming": "待渠道确认",
    "error_kind.retryable": "渠道暂时不可用",
    "error_kind.rate_limited": "渠道限流",
    "error_kind.quota_exhausted": "渠道当日额度已用完",
    "error_kind.auth_expired": "渠道授权失效",
    "error_kind.permanent": "渠道拒绝了内容",
    "error_kind.outcome_unknown": "不确定渠道是否已收到",
    "error_kind.error": "渠道出错",
    "wait.pending": "排队中，等待工作进程处理",
    "wait.scheduled": "已排定，{until} 开始处理",
    "wait.running": "正在发送",
    "wait.paused": "渠道已暂停，恢复后继续（{until} 再检查）",
    "wait.reauth": "渠道需要重新授权（运维人员设置新令牌后继续，{until} 再检查）",
    "wait.freeze": "发布已冻结，解除后继续（{until} 再检查）",
    "wait.breaker": "渠道连续失败，已熔断，{until} 起试探恢复",
    "wait.rate_limit": "渠道频率或当日额度已用完，{until} 后继续",
    "wait.website": "等待网站页面生成（本渠道链接到网站文章）",
    "wait.disabled": "渠道未配置或未启用，{until} 再检查",
    "wait.deferred": "已推迟，{until} 后继续",
    "wait.retrying": "上次失败：{error}；{until} 重试",
    "wait.unknown": "不确定渠道是否已收到，{until} 先向渠道核实再决定是否重发",
    "wait.confirming": "渠道已受理，等待其完成发布（{until} 再查询）",
    "wait.failed": "失败：{error}",
    "wait.no_time": "稍后",
    "error.with_own_text": "{what}（渠道原文：{own}）",
}

BEIJING = timezone(timedelta(hours=8), "UTC+8")
# A pending delivery due later than this is scheduled, not queued.
_SCHEDULED_AFTER = timedelta(seconds=5)


def _say(key: str, /, **values: Any) -> str:
    return fill(MESSAGES, key, **values)


def channel_name(kind: str) -> str:
    """What staff call channel `kind` (its code for a kind the catalogue does not know)."""
    return MESSAGES.get(f"channel.{kind}", kind)


def state_name(state: str) -> str:
    return MESSAGES.get(f"state.{state}", state)


def beijing(value: datetime | str | None) -> str | None:
    """`value` (a datetime or its ISO 8601 text; naive means UTC, as the store keeps it) in
    Beijing time to the second: `2026-12-02 11:30:05`."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def error_text(error: Mapping[str, Any] | None) -> str | None:
    """A delivery's or attempt's last error: what kind of failure it is, in Chinese, with the
    channel's own code and message unchanged beside it."""
    if not error:
        return None
    kind = str(error.get("kind") or "error")
    what = MESSAGES.get(f"error_kind.{kind}", _say("error_kind.error"))
    own = " ".join(str(p) for p in (error.get("code"), error.get("message")) if p)
    if not own:
        own = str(error.get("explanation") or "")
    return _say("error.with_own_text", what=what, own=own) if own else what


def waiting_reason(delivery: Mapping[str, Any], *, now: datetime | None = None) -> str | None:
    """Why `delivery` (a `delivery_view`) is not live yet, and until when; None for one that
    is live, withdrawn or cancelled: nothing to wait for."""
    state = delivery["state"]
    if state in ("live", "withdrawn", "cancelled"):
        return None
    until = beijing(delivery.get("next_attempt_at")) or _say("wait.no_time")
    error = error_text(delivery.get("last_error")) or _say("error_kind.error")
    reason = delivery.get("wait_reason")
    if state in ("pending", "deferred") and reason:
        key = f"wait.{reason}"
        if key in MESSAGES:
            return _say(key, until=until)
    if state == "pending":
        due = delivery.get("next_attempt_at")
        moment = datetime.fromisoformat(due) if due else None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if moment is not None and moment > (now or datetime.now(UTC)) + _SCHEDULED_AFTER:
            return _say("wait.scheduled", until=until)
        return _say("wait.pending")
    key = f"wait.{state}"
    if key not in MESSAGES:
        return state_name(state)
    return _say(key, until=until, error=error)


__all__ = [
    "BEIJING",
    "MESSAGES",
    "beijing",
    "channel_name",
    "error_text",
    "state_name",
    "waiting_reason",
]
