"""Calling WeChat: every API call of the adapter goes through `WeChatCalls._call`.

`_call` runs one wechatpy call; a refused access token is refreshed once and the call retried
once; everything else that can go wrong becomes one of the typed errors of `channels.errors`
(`wechat_error` maps WeChat's errcodes, which come with HTTP 200 as `{"errcode", "errmsg"}`):

-1 busy → Retryable; 45011/53501 too frequent → Retryable with a hint; 45009 daily API quota →
QuotaExhausted until midnight in Beijing; 40001/40014/42001 token → refresh once, retry once,
then AuthExpired(refreshable=False); credentials refused → AuthExpired(refreshable=False);
anything else (45002/45003/45004 too long, 40007 bad media id, 53503 check failed…) → Permanent
with WeChat's errmsg verbatim. An answer that is not JSON → Retryable for a read,
OutcomeUnknown for a write; a transport failure → `transport_error`.

`WeChatCalls` is the base of the adapter's parts (`channels.wechat_lookup`,
`channels.wechat_push`) and of `channels.wechat.WeChatChannel`, which sets `client`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import requests
from wechatpy.exceptions import WeChatClientException

from channels.base import redact_query_secrets, transport_error
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
ARTICLE_ABSENT = 53600

# Uploads and drafts are invisible until submitted, and repeating them only leaves an unused
# material or draft behind: a lost answer to one is retried, not looked up (no OutcomeUnknown).
PREPARE = False


def next_beijing_midnight(now: datetime | None = None) -> datetime:
    """The next 00:00 in Beijing, when WeChat's daily quotas reset, as a UTC datetime."""
    local = (now or datetime.now(UTC)).astimezone(BEIJING)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), BEIJING)
    return midnight.astimezone(UTC)


class WeChatCalls:
    """The adapter's one way to call WeChat; the subclass sets `client`."""

    client: PublisherWeChatClient

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
            self.client.refresh_after_rejection()
        except WeChatClientException as exc:
            raise wechat_error("stable_token", exc) from exc
        except UnexpectedAnswer as exc:
            raise Retryable("wechat: stable_token answered oddly", message=str(exc)) from exc
        except requests.RequestException as exc:
            raise transport_error("wechat", exc, write=False, what="stable_token") from exc


def wechat_error(what: str, exc: WeChatClientException) -> ChannelError:
    """The typed error for WeChat's answer to `what` (see the module docstring)."""
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
