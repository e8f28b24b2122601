"""WeChat's errcodes as data: what kind of trouble each is, and what it means for our staff.

WeChat answers HTTP 200 with `{"errcode", "errmsg"}`; which of our typed errors a code becomes
decides whether the engine retries, defers, waits for an operator or fails the item. Keeping
the codes in one table (each row citing the page it comes from) makes a wrong reading easy to
see and to correct: 45066 was once read as permanent, although the mass-send page says to
retry after a minute. `channels.wechat_calls.wechat_error` maps through `kind_of`; WeChat's own
errcode and errmsg always travel with our explanation, unchanged.

Kinds:
- `retryable`: try again (after `retry_after` seconds when set);
- `rate_limited`: WeChat's per-minute limit; slow down and retry in a minute;
- `quota`: the day's calls are spent; defer until midnight in Beijing;
- `auth_refresh`: the access token was refused; refresh it once, then re-authorise;
- `reauthorise`: the AppID, secret or IP whitelist is wrong; an operator must fix it;
- `channel_level`: the account may not use this API (e.g. not certified); an operator must
  act; the deliveries wait as for re-authorisation (`AuthExpired(refreshable=False)`),
  the explanation says what really is missing. Not for a delete (`DELETE_REFUSED`): an
  account that may not delete through the API (an uncertified one) would otherwise hold every
  WeChat publication at each retraction, and clearing the hold could never succeed; that one
  deletion fails instead, and staff delete the article by hand in the account's back office;
- `permanent`: this request is wrong; fixed by editing the item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "retryable",
    "rate_limited",
    "quota",
    "auth_refresh",
    "reauthorise",
    "channel_level",
    "permanent",
]

GLOBAL_CODES = (
    "https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html"
)
CALL_LIMITS = "https://developers.weixin.qq.com/doc/service/Message_Management/API_Call_Limits.html"
BATCH_SENDS = (
    "https://developers.weixin.qq.com/doc/offiaccount/Message_Management/"
    "Batch_Sends_and_Originality_Checks.html"
)
GET_ARTICLE = "https://developers.weixin.qq.com/doc/service/api/public/api_freepublishgetarticle"
DRAFT_ADD = "https://developers.weixin.qq.com/doc/offiaccount/Draft_Box/Add_draft.html"
# The adapter has long read 53501 as "too frequent"; no official page confirming it was found.
UNCONFIRMED = "(no official page found; the adapter's earlier reading)"


@dataclass(frozen=True)
class Code:
    """One errcode: its `kind`, our explanation for staff, and the page it comes from."""

    kind: Kind
    explanation: str
    source: str
    retry_after: float | None = None


ARTICLE_ABSENT = 53600
API_UNAUTHORISED = 48001
TOKEN_REFUSED = (40001, 40014, 42001)

CODES: dict[int, Code] = {
    -1: Code("retryable", "微信系统繁忙，稍后自动重试", GLOBAL_CODES),
    40001: Code("auth_refresh", "微信不接受当前的 access_token", GLOBAL_CODES),
    40014: Code("auth_refresh", "access_token 不合法", GLOBAL_CODES),
    42001: Code("auth_refresh", "access_token 已过期", GLOBAL_CODES),
    40013: Code("reauthorise", "AppID 无效：请检查 PUBLISHER_WECHAT_APPID", GLOBAL_CODES),
    40125: Code("reauthorise", "AppSecret 无效：请检查 PUBLISHER_WECHAT_SECRET", GLOBAL_CODES),
    40164: Code(
        "reauthorise",
        "调用接口的服务器 IP 不在公众号的 IP 白名单中：请在公众平台“开发-基本配置”中添加",
        GLOBAL_CODES,
    ),
    41004: Code("reauthorise", "缺少 AppSecret：请设置 PUBLISHER_WECHAT_SECRET", GLOBAL_CODES),
    61024: Code("reauthorise", "AppID 或 AppSecret 被拒绝：请检查公众号的开发者设置", GLOBAL_CODES),
    45009: Code(
        "quota", "该接口今日的调用次数已用完（北京时间零点恢复），稍后自动继续", CALL_LIMITS
    ),
    45011: Code("rate_limited", "调用过于频繁，放慢速度，一分钟后重试", GLOBAL_CODES, 60.0),
    53501: Code("rate_limited", "操作过于频繁，一分钟后重试", UNCONFIRMED, 60.0),
    45066: Code(
        "retryable", "同一群发（clientmsgid）重试过快，一分钟后自动重试", BATCH_SENDS, 60.0
    ),
    API_UNAUTHORISED: Code(
        "channel_level",
        "该公众号未获得此接口权限（例如未认证的账号不能群发）：请管理员在公众平台"
        "“设置与开发-接口权限”中查看并开通；在此之前该渠道的相关操作暂停，"
        "状态显示为“需重新授权”",
        GLOBAL_CODES,
    ),
    45002: Code("permanent", "正文超过微信的长度限制", DRAFT_ADD),
    45003: Code("permanent", "标题超过微信的长度限制", DRAFT_ADD),
    45004: Code("permanent", "摘要超过微信的长度限制", DRAFT_ADD),
    45110: Code("permanent", "作者超过微信的长度限制", DRAFT_ADD),
    40007: Code("permanent", "媒体文件 media_id 无效", GLOBAL_CODES),
    ARTICLE_ABSENT: Code("permanent", "文章不存在（article_id 无效或已删除）", GET_ARTICLE),
}

# 48001 ("api unauthorized") answered to a delete: that deletion fails (see `channel_level`).
DELETE_REFUSED: dict[str, Code] = {
    endpoint: Code(
        "permanent", f"该公众号未获得删除接口权限，请在公众号后台手动删除{what}", GLOBAL_CODES
    )
    for endpoint, what in {
        "freepublish/delete": "该文章",
        "message/mass/delete": "该文章的群发消息",
        "material/del_material": "该文章的封面素材",
    }.items()
}

UNKNOWN = Code("permanent", "微信拒绝了该请求", GLOBAL_CODES)


def code_of(errcode: int, endpoint: str = "") -> Code:
    """The row for `errcode` answered to `endpoint`; a code not in the table is a refusal of
    this request."""
    if errcode == API_UNAUTHORISED and endpoint in DELETE_REFUSED:
        return DELETE_REFUSED[endpoint]
    return CODES.get(errcode, UNKNOWN)
