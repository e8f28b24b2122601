"""Weibo's error codes as data: what each means for us, and what the operator reads.

Every row is from Weibo's own table, https://open.weibo.com/wiki/Error_code (the codes and
their English texts; the Chinese explanations are ours, for the staff who read them). A code
not listed is a refusal we do not know: `Permanent`, with Weibo's own text kept beside ours.

What each kind becomes (`error_for`):

    busy         Retryable          Weibo is failing for a moment: try again shortly
    unsettled    Retryable          Weibo's back end failed mid-way (remote service, job
                 (OutcomeUnknown    expired, RPC): a read is tried again; a share so answered
                 on a share)        may have gone out, so the adapter looks it up first
                                    (`UNSETTLED`)
    rate         RateLimited        a frequency limit is spent: defer until the window ends
    reauth       AuthExpired        the token, the app's rights or this server's IP are
                 (refreshable=False) refused: an operator must act (the explanation says
                                    what) and re-authorise; the deliveries wait, nothing fails
    posted       OutcomeUnknown     Weibo says the post went out but answers late (20032):
                                    look it up before anything is sent again
    repeat       (the adapter's)    "same text already posted": the adapter looks the post
                                    up and adopts it (`REPEATED`)
    gone         (the adapter's)    the post does not exist (20101): deleting it is done,
                                    looking it up finds nothing
    refused      Permanent          the content or request is wrong: fixed by editing
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from channels.errors import (
    AuthExpired,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    RateLimited,
    Retryable,
)

Kind = Literal["busy", "unsettled", "rate", "reauth", "posted", "repeat", "gone", "refused"]
SOURCE = "https://open.weibo.com/wiki/Error_code"
# Without a Retry-After, the wait for a rate-limit code: Weibo counts its limits per hour
# (https://open.weibo.com/wiki/Rate-limiting), so the wait is at most that.
RATE_WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class Code:
    kind: Kind
    explanation: str


# Source of every row: https://open.weibo.com/wiki/Error_code (system codes 1xxxx, service
# codes 2xxxx, OAuth codes 213xx).
CODES: dict[int, Code] = {
    10001: Code("busy", "微博系统错误，稍后重试"),  # System error
    10002: Code("busy", "微博服务暂停，稍后重试"),  # Service unavailable
    10003: Code("unsettled", "微博远程服务错误"),  # Remote service error
    10009: Code("busy", "微博任务过多、系统繁忙，稍后重试"),  # Too many pending tasks
    10010: Code("unsettled", "微博任务超时"),  # Job expired
    10011: Code("unsettled", "微博内部调用错误"),  # RPC error
    # IP limit: the app's IP whitelist leaves this server out; every call fails alike.
    10004: Code(
        "reauth",
        "本服务器的 IP 不在微博应用允许的 IP 范围内：请在微博开放平台把本服务器的公网 IP "
        "加入应用的 IP 白名单（或清空白名单后重新授权），再恢复微博渠道",
    ),
    # Permission denied, need a high level appkey: the app lacks the rights, not the item.
    10005: Code(
        "reauth",
        "微博应用的权限级别不够调用该接口：请在微博开放平台为应用申请该接口的高级权限，"
        "获批后重新授权微博账号",
    ),
    10014: Code("reauth", "应用的接口访问权限受限，须在微博开放平台申请权限后重新授权"),
    10016: Code("refused", "缺少微博要求的参数（见微博原文）"),  # Miss required parameter
    # "Parameter (%s)'s value invalid, expect (%s), but get (%s)": any parameter, not only
    # the link's safe domain; Weibo's own text names which.
    10017: Code("refused", "微博认为参数值不合法（见微博原文说明的参数及要求）"),
    10022: Code("rate", "本服务器 IP 的请求次数超过微博上限"),  # IP requests out of rate limit
    10023: Code("rate", "账号的请求次数超过微博上限"),  # User requests out of rate limit
    10024: Code("rate", "账号调用该接口的次数超过微博上限"),  # User requests for (%s) …
    20005: Code("refused", "微博只接受 JPG、GIF、PNG 格式的配图"),  # Unsupported image type
    20006: Code("refused", "配图超过微博允许的大小（5 MB）"),  # Image size too large
    20007: Code("refused", "微博未在上传内容中找到图片"),  # Does multipart has image
    20008: Code("refused", "微博正文为空"),  # Content is null
    20012: Code("refused", "微博正文超过 140 字"),  # Text too long (140)
    20016: Code("rate", "发布内容过于频繁，微博暂不接受"),  # Out of limit
    20017: Code("rate", "短时间内提交了相似的内容，微博暂不接受"),  # Repeat content
    20018: Code("refused", "正文包含微博认定的非法网址"),  # Contain illegal website
    20019: Code("repeat", "微博上已有相同内容的微博"),  # Repeat conetnt
    20020: Code("refused", "微博认定正文包含广告信息"),  # Contain advertising
    20021: Code("refused", "微博认定正文包含非法内容，请修改信息"),  # Content is illegal
    # "Update success, while server slow now, please wait 1-2 minutes": it WAS posted.
    20032: Code("posted", "微博已发布成功但服务器延迟，稍后查找该微博，不重复发布"),
    20101: Code("gone", "该微博已不存在"),  # Target weibo does not exist
    20111: Code("repeat", "微博上已有相同内容的微博"),  # Repeated weibo text
    21321: Code("reauth", "未审核的微博应用使用人数超过限制，须完成应用审核后重新授权"),
}
# 21301–21399 are the OAuth codes (auth failed, token used/expired/revoked/rejected, accessor
# revoked, expired_token 21327, …): every one needs an operator's new authorisation.
REAUTH_RANGE = range(21301, 21400)
REPEATED = frozenset(c for c, row in CODES.items() if row.kind == "repeat")
UNSETTLED = frozenset(c for c, row in CODES.items() if row.kind == "unsettled")
POSTED = frozenset(c for c, row in CODES.items() if row.kind == "posted")
GONE = 20101


def lookup_code(code: int) -> Code:
    """The row for `code`; an OAuth code outside the table is a re-authorisation."""
    row = CODES.get(code)
    if row is not None:
        return row
    if code in REAUTH_RANGE:
        return Code("reauth", "微博拒绝了访问令牌（过期、撤销或无效），须由管理员重新授权微博账号")
    return Code("refused", "微博拒绝了该请求（见微博原文）")


def error_for(body: Mapping[str, Any], status: int, retry_after: str | None = None) -> ChannelError:
    """The typed error for Weibo's `{"error", "error_code", "request"}` answer (kinds
    "repeat" and "gone" included: the adapter catches those by code)."""
    raw = body.get("error_code")
    code = int(str(raw)) if str(raw).isdigit() else -1
    row = lookup_code(code)
    explanation = f"weibo: {row.explanation}"
    common: dict[str, Any] = {
        "code": raw,
        "message": str(body.get("error", "")),
        "http_status": status,
    }
    if row.kind == "busy":
        return Retryable(explanation, **common)
    if row.kind == "unsettled":
        return Retryable(f"{explanation}，稍后重试", **common)
    if row.kind == "rate":
        return RateLimited(explanation, until=_until(retry_after), **common)
    if row.kind == "reauth":
        return AuthExpired(explanation, refreshable=False, **common)
    if row.kind == "posted":
        return OutcomeUnknown(explanation, **common)
    return Permanent(explanation, **common)


def _until(retry_after: str | None) -> datetime:
    """Weibo's reset time when it gave one, else `RATE_WAIT_SECONDS` from now."""
    try:
        seconds = max(1.0, float(retry_after)) if retry_after else RATE_WAIT_SECONDS
    except ValueError:
        seconds = RATE_WAIT_SECONDS
    return datetime.now(UTC) + timedelta(seconds=seconds)
