"""The WeChat official-account API the way wechatpy speaks it, plus what wechatpy 1.8.18 lacks.

wechatpy has no `stable_token`, `draft` or `freepublish`, and it hard-codes
`https://api.weixin.qq.com` both in `API_BASE_URL` and in `fetch_access_token`. The client here
takes the base from the settings (a sandbox, or the real API) and keeps the one access token
every worker shares in the `SharedStore`: a plain `cgi-bin/token` call would invalidate the
other workers' tokens, so only `stable_token` is ever used.

wechatpy raises `WeChatClientException(errcode, errmsg)` for an error answer, lets `requests`
exceptions through, and returns the raw `requests.Response` when the body is not JSON; the
adapter maps all three onto our typed errors (`channels.wechat_calls`).

A refused token is replaced the way the stable_token page asks
(https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken): a forced
refresh invalidates the token for every holder and is limited ("强制刷新模式每天限用 20 次且需
间隔 30 秒"), so one worker at a time (a lock in the shared store) first takes a token another
worker has shared since, then asks without force, and forces only when WeChat hands out the
very token it has just refused; forced refreshes spend the `FORCE_REFRESH` budget.
"""

from __future__ import annotations

import time
from typing import Any

from wechatpy import WeChatClient
from wechatpy.client.api.base import BaseWeChatAPI

from channels.base import SharedStore, token_key
from channels.budgets import DailyBudgets
from channels.errors import Retryable

TOKEN_KEY = token_key("wechat")
_FETCH_LOCK_KEY = "wechat:access_token:fetching"
# The token is dropped from the shared store this long before WeChat's own expiry, so that no
# worker starts a call with a token about to lapse.
TOKEN_MARGIN_SECONDS = 300
_FETCH_WAIT_SECONDS = 5.0
FORCE_REFRESH = "stable_token (force_refresh)"  # its budget's name in `DailyBudgets`
FORCE_GAP_SECONDS = 30.0
_REFRESH_LOCK_KEY = "wechat:access_token:refreshing"
_FORCED_RECENTLY_KEY = "wechat:access_token:forced"
_REFRESH_LOCK_SECONDS = 15.0


class UnexpectedAnswer(Exception):
    """WeChat answered 200 with something that is not the JSON the call expects."""


def answer(result: Any, *fields: str) -> dict[str, Any]:
    """`result` as a dict holding `fields`. Raises `UnexpectedAnswer` otherwise.

    wechatpy returns the raw `requests.Response` when a body is not JSON.
    """
    if not isinstance(result, dict):
        text = getattr(result, "text", repr(result))
        raise UnexpectedAnswer(str(text)[:500])
    missing = [name for name in fields if name not in result]
    if missing:
        raise UnexpectedAnswer(f"answer lacks {', '.join(missing)}: {str(result)[:400]}")
    return result


class WeChatStableToken(BaseWeChatAPI):
    """`POST cgi-bin/stable_token`: the same token to every caller until it expires."""

    def fetch(self, *, force_refresh: bool = False) -> dict[str, Any]:
        client: PublisherWeChatClient = self._client
        result = client.post(
            f"{client.api_base}/cgi-bin/stable_token",
            # A list, not a dict: wechatpy adds `access_token` to dict params, and fetching the
            # token must not need one.
            params=[],
            data={
                "grant_type": "client_credential",
                "appid": client.appid,
                "secret": client.secret,
                "force_refresh": force_refresh,
            },
        )
        return answer(result, "access_token")


class WeChatDraft(BaseWeChatAPI):
    """The draft box (`cgi-bin/draft/*`)."""

    def add(self, articles: list[dict[str, Any]]) -> str:
        """Create a draft of 1-8 articles; returns its media_id."""
        result = self._post("draft/add", data={"articles": articles})
        return str(answer(result, "media_id")["media_id"])

    def delete(self, media_id: str) -> None:
        self._post("draft/delete", data={"media_id": media_id})


class WeChatFreePublish(BaseWeChatAPI):
    """Publishing without pushing (`cgi-bin/freepublish/*`)."""

    def submit(self, media_id: str) -> str:
        """Publish a draft; returns the publish_id of the asynchronous job."""
        result = self._post("freepublish/submit", data={"media_id": media_id})
        return str(answer(result, "publish_id")["publish_id"])

    def get(self, publish_id: str) -> dict[str, Any]:
        result = self._post("freepublish/get", data={"publish_id": publish_id})
        return answer(result, "publish_status")

    def batchget(self, offset: int = 0, count: int = 20, no_content: bool = True) -> dict[str, Any]:
        result = self._post(
            "freepublish/batchget",
            data={"offset": offset, "count": count, "no_content": 1 if no_content else 0},
        )
        return answer(result)

    def getarticle(self, article_id: str) -> dict[str, Any]:
        result = self._post("freepublish/getarticle", data={"article_id": article_id})
        return answer(result, "news_item")

    def delete(self, article_id: str, index: int = 0) -> None:
        """Delete a published article (index 0: every article of the message)."""
        answer(self._post("freepublish/delete", data={"article_id": article_id, "index": index}))


class WeChatUploads(BaseWeChatAPI):
    """Images: inline images on WeChat's CDN, and permanent thumb material for covers."""

    def upload_image(self, data: bytes, filename: str, mime: str) -> str:
        """`media/uploadimg`; returns the CDN URL to use in article content."""
        result = self._post("media/uploadimg", files={"media": (filename, data, mime)})
        return str(answer(result, "url")["url"])

    def add_thumb(self, data: bytes, filename: str = "cover.jpg") -> str:
        """`material/add_material?type=thumb` (JPEG, < 64 KB); returns its media_id."""
        result = self._post(
            "material/add_material",
            params={"type": "thumb"},
            files={"media": (filename, data, "image/jpeg")},
        )
        return str(answer(result, "media_id")["media_id"])


class WeChatMass(BaseWeChatAPI):
    """Mass send to followers (`cgi-bin/message/mass/*`)."""

    def sendall(self, media_id: str, *, tag_id: str | None, clientmsgid: str) -> dict[str, Any]:
        filter_: dict[str, Any] = {"is_to_all": tag_id is None}
        if tag_id is not None:
            filter_["tag_id"] = int(tag_id) if tag_id.isdigit() else tag_id
        result = self._post(
            "message/mass/sendall",
            data={
                "filter": filter_,
                "mpnews": {"media_id": media_id},
                "msgtype": "mpnews",
                "send_ignore_reprint": 0,
                "clientmsgid": clientmsgid,
            },
        )
        return answer(result, "msg_id")

    def get(self, msg_id: str) -> dict[str, Any]:
        result = self._post("message/mass/get", data={"msg_id": msg_id})
        return answer(result, "msg_status")


class PublisherWeChatClient(WeChatClient):
    """wechatpy's client on a configurable base, with the token kept in the `SharedStore`.

    wechatpy's own retry-on-token-error is off (`auto_retry=False`): the adapter refreshes
    once and retries once itself, so a token WeChat keeps refusing can never loop.
    """

    stable_token = WeChatStableToken()
    draft = WeChatDraft()
    freepublish = WeChatFreePublish()
    uploads = WeChatUploads()
    mass = WeChatMass()

    def __init__(
        self, appid: str, secret: str, *, api_base: str, shared: SharedStore, timeout: float
    ) -> None:
        super().__init__(appid, secret, timeout=timeout, auto_retry=False)
        self.api_base = api_base.rstrip("/")
        self.API_BASE_URL = f"{self.api_base}/cgi-bin/"
        self.shared = shared
        self.last_token: str | None = None

    @property
    def access_token(self) -> str:
        """The shared token, fetched with `stable_token` when no worker holds a valid one."""
        token = self.shared.get(TOKEN_KEY)
        if token is None and self.shared.take_slot(_FETCH_LOCK_KEY, 1, 10) is not None:
            # Another worker is fetching right now: its token is the one to use.
            deadline = time.monotonic() + _FETCH_WAIT_SECONDS
            while token is None and time.monotonic() < deadline:
                time.sleep(0.1)
                token = self.shared.get(TOKEN_KEY)
        if token is None:
            token = self.fetch_access_token()
        self.last_token = token
        return token

    def fetch_access_token(self, force_refresh: bool = False) -> str:
        """Fetch the stable token, share it, and return it. Raises WeChatClientException."""
        result = self.stable_token.fetch(force_refresh=force_refresh)
        token = str(result["access_token"])
        expires_in = float(result.get("expires_in", 7200))
        margin = min(TOKEN_MARGIN_SECONDS, expires_in / 10)
        self.shared.set(TOKEN_KEY, token, ttl_seconds=max(1.0, expires_in - margin))
        return token

    def refresh_after_rejection(self, budgets: DailyBudgets) -> None:
        """WeChat refused `last_token`: share a replacement, one worker at a time (the others
        wait for it). A token shared since is taken as it is; else the stable token is asked
        for without force; only when that is the refused token again is it forced.

        Raises QuotaExhausted when today's forced refreshes are spent, Retryable within 30 s
        of the last forced refresh or when the refreshing worker shares nothing in time, and
        what `fetch_access_token` raises.
        """
        refused = self.last_token
        if not self.shared.add(_REFRESH_LOCK_KEY, "1", _REFRESH_LOCK_SECONDS):
            self._await_replacement(refused)
            return
        try:
            if self._shared_token_other_than(refused) or self.fetch_access_token() != refused:
                return
            if not self.shared.add(_FORCED_RECENTLY_KEY, "1", FORCE_GAP_SECONDS):
                raise Retryable(
                    "wechat: 微信仍拒绝刚取得的 access_token，而上次强制刷新不到 30 秒，稍后重试",
                    retry_after=FORCE_GAP_SECONDS,
                )
            budgets.spend(FORCE_REFRESH)
            self.fetch_access_token(force_refresh=True)
        finally:
            self.shared.delete(_REFRESH_LOCK_KEY)

    def _shared_token_other_than(self, refused: str | None) -> bool:
        shared = self.shared.get(TOKEN_KEY)
        return shared is not None and shared != refused

    def _await_replacement(self, refused: str | None) -> None:
        deadline = time.monotonic() + _REFRESH_LOCK_SECONDS
        while not self._shared_token_other_than(refused):
            if time.monotonic() > deadline:
                raise Retryable("wechat: 另一进程正在刷新 access_token，稍后重试", retry_after=5.0)
            time.sleep(0.1)
