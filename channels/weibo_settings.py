"""What the Weibo adapter is built from (`WeiboSettings`), and the facts about Weibo's hosts,
limits and token it needs before it calls anything. Re-exported by `channels.weibo`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, urlsplit

from channels.base import token_key
from channels.fetch import FetchPolicy

TOKEN_KEY = token_key("weibo")
REAL_API_HOST = "api.weibo.com"
REAL_WEB_BASE = "https://weibo.com"
# Weibo rewrites links to these shorteners; their target is read from the redirect. A sandbox
# (any API base but the real one) serves its own under `/t/` (docs/protocols.md §7).
SHORT_LINKS = ("http://t.cn/", "https://t.cn/", "http://sinaurl.cn/", "https://sinaurl.cn/")
NO_TOKEN = "weibo: no access token: give one with `publisher channels set-token weibo`"
NO_RIP = (
    "weibo: set PUBLISHER_WEIBO_RIP to this server's public IP address: Weibo requires the "
    "real IP of the operating user with every post (statuses/share `rip`)"
)
# "一个应用内单授权用户每天累计只能请求微博开放接口 100 次" (https://open.weibo.com/wiki/Rate-limiting)
DAILY_CALLS = 100
SANDBOX_RIP = "127.0.0.1"  # what a sandbox (or any other API base) is told without a setting
# Weibo's 20032 says "Update success, while server slow now, please wait 1-2 minutes"
# (https://open.weibo.com/wiki/Error_code): a share may show on the timeline that much later.
SLOW_SECONDS = 120.0


@dataclass(frozen=True)
class WeiboSettings:
    """What the Weibo adapter needs: the API, the account, its post budget and policies.

    `access_token` None: only the shared store's (`TOKEN_KEY`); `rip` None: refused on the real
    API (`NO_RIP`); `posts_per_window` posts per `window_seconds` is the account's post
    budget, `daily_calls` its API calls a Beijing day; `safe_domains` are the hosts a post may
    link to (empty: not checked before sending); `web_base` None: derived from `api_base`; `fetch`:
    what may be downloaded of the cover image an item links to (`channels.fetch`);
    `slow_seconds`: how late a share may show on the timeline (a lost share is taken for
    absent only once every unanswered share is older than that).
    """

    api_base: str
    access_token: str | None = field(default=None, repr=False)
    rip: str | None = None
    account: str = "default"
    posts_per_window: int = 30
    window_seconds: float = 3600.0
    daily_calls: int = DAILY_CALLS
    edit_policy: Literal["repost", "correction"] = "repost"
    safe_domains: tuple[str, ...] = ()
    web_base: str | None = None
    timeout: float = 10.0
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    slow_seconds: float = SLOW_SECONDS


def real_api(api_base: str) -> bool:
    return urlsplit(api_base).hostname == REAL_API_HOST


def web_base_for(api_base: str) -> str:
    """Where status pages live: weibo.com for the real API, else the API server itself."""
    return REAL_WEB_BASE if real_api(api_base) else api_base


def short_links_for(api_base: str) -> tuple[str, ...]:
    """Where short links are served: Weibo's shorteners, and a sandbox's own `/t/`."""
    return SHORT_LINKS if real_api(api_base) else (*SHORT_LINKS, f"{api_base}/t/")


def public_ip(ip: str | None) -> bool:
    try:
        return bool(ip) and ipaddress.ip_address(ip or "").is_global
    except ValueError:
        return False


def token_source(shared: str | None, configured: str | None) -> str:
    """Where the token comes from, for the operator's channel list (never the token)."""
    if shared:
        return "shared store"
    return "settings" if configured else "missing: give one with `publisher channels set-token`"


def redact(text: str, token: str) -> str:
    """`text` without the token (raw or URL-encoded): error messages are logged and shown."""
    if not token:
        return text
    return text.replace(token, "***").replace(quote(token, safe=""), "***")


__all__ = [
    "DAILY_CALLS",
    "NO_RIP",
    "NO_TOKEN",
    "SANDBOX_RIP",
    "SLOW_SECONDS",
    "TOKEN_KEY",
    "WeiboSettings",
    "public_ip",
    "real_api",
    "redact",
    "short_links_for",
    "token_source",
    "web_base_for",
]
