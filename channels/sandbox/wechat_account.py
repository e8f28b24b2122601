"""The sandbox WeChat account: its state and WeChat's rules, without the HTTP around them.

`WeChatSandbox` keeps the account in `SandboxState.records` (tokens, uploaded images and thumb
materials, drafts, publish jobs, articles, mass sends, remembered clientmsgids, the day's
counters) and answers for the token rules (`cgi-bin/token` shortens the previous token's life;
`stable_token` hands every caller the same one; forced refreshes 20 a day, 30 s apart), the
daily quotas per endpoint (`DAILY_QUOTAS`) and publish jobs finishing.
`finish_later` finishes a job after its delay and POSTs WeChat's `PUBLISHJOBFINISH` event;
`finish_mass_later` does the same for a mass send (`MASSSENDJOBFINISH`), rejected as an
administrator would under 群发保护 when `reject_next_mass` is set;
`check_article` is WeChat's draft check with its own error codes. Every failure is a
`WeChatError`, which `channels.sandbox.wechat` answers as `{"errcode", "errmsg"}`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any
from xml.etree import ElementTree

import requests
from wechatpy.crypto import WeChatCrypto

from channels.sandbox.common import SandboxState

THUMB_MAX_BYTES = 64 * 1024  # a thumb material: JPEG, at most this
IMAGE_MAX_BYTES = 1024 * 1024  # `media/uploadimg`: JPEG or PNG, under this
CLIENTMSGID_MEMORY_SECONDS = 24 * 3600  # a mass send's clientmsgid answers 45065 this long
# A send an administrator refused under API 群发保护 fails: `message/mass/get` says SEND_FAIL
# (https://developers.weixin.qq.com/doc/service/api/notify/message/api_massmsgget: "如管理员
# 拒绝或30分钟内没有确认，该次群发失败"); the MASSSENDJOBFINISH `Status` for it is not on the pages
# we read, so the sandbox sends the one the product takes for a refusal.
MASS_REJECTED_STATUS = "err(30001)"

# Calls a day per endpoint of a newly registered account, as "接口调用频次限制" lists them
# (https://developers.weixin.qq.com/doc/service/Message_Management/API_Call_Limits.html):
# 发布能力 (freepublish) 发布接口 100, 发布状态轮询接口 100, 删除发布 10, 通过 article_id 获取
# 已发布文章 100, 获取成功发布列表 100; 草稿箱 新建草稿 1000, 删除草稿 1000; 高级群发接口 100.
# Past a limit WeChat answers 45009 until midnight, Beijing time.
DAILY_QUOTAS = {
    "freepublish/submit": 100,
    "freepublish/get": 100,
    "freepublish/delete": 10,
    "freepublish/getarticle": 100,
    "freepublish/batchget": 100,
    "draft/add": 1000,
    "draft/delete": 1000,
    "message/mass/sendall": 100,
}
# "强制刷新模式每天限用 20 次且需间隔 30 秒" (closer together: no new token)
# (https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken).
FORCE_REFRESH_GAP_SECONDS = 30.0


@dataclass
class WeChatSettings:
    """The account's knobs, read and set at `/_sandbox/wechat`."""

    appid: str = "sandbox"
    secret: str = "sandbox-secret"
    token_ttl_seconds: int = 7200
    token_grace_seconds: float = 300.0
    publish_delay_seconds: float = 0.3
    callback_url: str = ""
    callback_token: str = "sandbox"
    # Set: the callback speaks safe mode (安全模式), as WeChat does for an account with an
    # EncodingAESKey: the event only in `<Encrypt>`, signed by `msg_signature`.
    callback_aes_key: str = ""
    api_quota_exhausted: bool = False
    mass_per_day: int = 1
    # Endpoint ("freepublish/get") → calls a day, laid over `DAILY_QUOTAS`.
    daily_quotas: dict[str, int] = field(default_factory=dict)
    # Endpoints this account may not call (48001), e.g. "freepublish/delete" on an account
    # that is not certified.
    unauthorized: list[str] = field(default_factory=list)
    force_refresh_per_day: int = 20
    # Permanent materials other than images (thumbs): "其他类型为1000", https://developers.
    # weixin.qq.com/doc/service/api/material/permanent/api_addmaterial
    material_cap: int = 1000
    mass_delay_seconds: float = 0.3  # a mass send's result comes this long after sendall
    reject_next_mass: bool = False  # the next mass send is refused by an administrator


class WeChatError(Exception):
    """An error answer: WeChat's errcode and errmsg, plus any fields it adds (`msg_id`)."""

    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg, self.extra = errcode, errmsg, extra


def ok_answer(**body: Any) -> dict[str, Any]:
    """WeChat's success answer for a call that returns little besides `errcode` 0."""
    return {"errcode": 0, "errmsg": "ok", **body}


def new_id(prefix: str = "") -> str:
    return prefix + secrets.token_hex(12)


class WeChatSandbox:
    """The account's state; every method runs under `state.lock`."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.settings = WeChatSettings()
        for name in (
            "tokens",
            "images",
            "materials",
            "drafts",
            "publishes",
            "articles",
            "mass",
            "clientmsgids",
            "daily",
            "force_refresh",
        ):
            state.records.setdefault(name, {})

    @property
    def records(self) -> dict[str, Any]:
        return self.state.records

    # --- tokens ---------------------------------------------------------------------------

    def check_credentials(self, appid: str | None, secret: str | None) -> None:
        if appid != self.settings.appid:
            raise WeChatError(40013, "invalid appid")
        if secret != self.settings.secret:
            raise WeChatError(40125, "invalid appsecret")

    def issue_token(self, *, previous_lives: float) -> dict[str, Any]:
        now = time.time()
        for token in self.records["tokens"].values():
            token["expires_at"] = min(token["expires_at"], now + previous_lives)
        value = secrets.token_urlsafe(32)
        self.records["tokens"][value] = {
            "expires_at": now + self.settings.token_ttl_seconds,
            "issued_at": now,
            "stable": False,
        }
        self.state.count("tokens_issued")
        return {"access_token": value, "expires_in": self.settings.token_ttl_seconds}

    def stable_token(self, force_refresh: bool) -> dict[str, Any]:
        now = time.time()
        live = [
            (value, token)
            for value, token in self.records["tokens"].items()
            if token["stable"] and token["expires_at"] > now
        ]
        if force_refresh:
            if self.daily("force_refresh") >= self.settings.force_refresh_per_day:
                raise WeChatError(45009, "reach max api daily quota limit")
            forced_at = self.records["force_refresh"].get("at", 0.0)
            if now - forced_at < FORCE_REFRESH_GAP_SECONDS and live:
                live = [max(live, key=lambda pair: pair[1]["expires_at"])]
            else:
                self.daily("force_refresh", 1)
                self.records["force_refresh"]["at"] = now
                self.state.count("force_refreshes")
                live = []
        if live:
            value, token = max(live, key=lambda pair: pair[1]["expires_at"])
            return {"access_token": value, "expires_in": int(token["expires_at"] - now)}
        issued = self.issue_token(previous_lives=0.0)
        self.records["tokens"][issued["access_token"]]["stable"] = True
        return issued

    def check_token(self, token: str | None) -> None:
        if not token:
            raise WeChatError(41001, "access_token missing")
        record = self.records["tokens"].get(token)
        if record is None or record.get("refused"):
            raise WeChatError(40001, "invalid credential, access_token is invalid or not latest")
        if record["expires_at"] <= time.time():
            raise WeChatError(42001, "access_token expired")

    def expire_tokens(self) -> None:
        for token in self.records["tokens"].values():
            token["expires_at"] = min(token["expires_at"], time.time() - 1)

    def refuse_tokens(self) -> None:
        """Every token issued so far is refused (40001), while `stable_token` without force
        keeps handing it out: only a forced refresh gets a token WeChat accepts."""
        for token in self.records["tokens"].values():
            token["refused"] = True

    # --- quotas -----------------------------------------------------------------------------

    def daily(self, name: str, add: int = 0) -> int:
        today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
        daily = self.records["daily"]
        if daily.get("day") != today:
            daily.clear()
            daily["day"] = today
        daily[name] = daily.get(name, 0) + add
        return int(daily[name])

    def admit(self, endpoint: str) -> None:
        """A call to `endpoint` ("freepublish/get") with a valid token: 48001 if the account
        may not use it, else counted against its daily quota (45009 once spent)."""
        if endpoint in self.settings.unauthorized:
            raise WeChatError(48001, "api unauthorized")
        limit = {**DAILY_QUOTAS, **self.settings.daily_quotas}.get(endpoint)
        if limit is None:
            return
        if self.daily(f"calls:{endpoint}") >= limit:
            raise WeChatError(45009, "reach max api daily quota limit")
        self.daily(f"calls:{endpoint}", 1)

    def new_day(self) -> None:
        self.records["daily"].clear()

    # --- publishing -------------------------------------------------------------------------

    def finish_publish(self, publish_id: str, base_url: str) -> dict[str, Any] | None:
        """Turn a due publish job into articles; returns the callback event if one is due."""
        job = self.records["publishes"].get(publish_id)
        if job is None or job["status"] != 1 or time.time() < job["due_at"]:
            return None
        draft = self.records["drafts"].get(job["media_id"])
        banned = [i + 1 for i, a in enumerate(draft["articles"]) if "违禁" in a["content"]]
        if banned:
            job.update(status=4, fail_idx=banned)
        else:
            article_id = new_id("a_")
            news = [
                {**a, "url": f"{base_url}/s/{article_id}?idx={i + 1}", "is_deleted": False}
                for i, a in enumerate(draft["articles"])
            ]
            self.records["articles"][article_id] = {
                "article_id": article_id,
                "publish_id": publish_id,
                "news_item": news,
                "update_time": int(time.time()),
                "deleted": False,
            }
            job.update(status=0, article_id=article_id)
        self.state.save()
        return job

    def settle_due(self, base_url: str) -> None:
        for publish_id in list(self.records["publishes"]):
            self.finish_publish(publish_id, base_url)


def finish_later(sandbox: WeChatSandbox, publish_id: str, base_url: str, delay: float) -> None:
    """Finish the publish job after `delay` and send WeChat's PUBLISHJOBFINISH event."""

    def finish() -> None:
        with sandbox.state.lock:
            job = sandbox.finish_publish(publish_id, base_url)
            settings = replace(sandbox.settings)
        if job is None or not settings.callback_url:
            return
        _send_event(sandbox, settings, _publish_event(job))

    _later(delay, finish)


def finish_mass_later(sandbox: WeChatSandbox, msg_id: str, rejected: bool, delay: float) -> None:
    """Settle the mass send after `delay` (sent, or refused by an administrator) and send
    WeChat's MASSSENDJOBFINISH event."""

    def finish() -> None:
        with sandbox.state.lock:
            record = sandbox.records["mass"].get(msg_id)
            if record is None or record["msg_status"] != "SENDING":
                return
            record["msg_status"] = "SEND_FAIL" if rejected else "SEND_SUCCESS"
            record["result"] = MASS_REJECTED_STATUS if rejected else "send success"
            sandbox.state.save()
            settings, record = replace(sandbox.settings), dict(record)
        if settings.callback_url:
            _send_event(sandbox, settings, _mass_event(record))

    _later(delay, finish)


def _later(delay: float, call: Any) -> None:
    timer = threading.Timer(delay, call)
    timer.daemon = True
    timer.start()


def _send_event(sandbox: WeChatSandbox, settings: WeChatSettings, event: str) -> None:
    try:
        _post_event(settings, event)
    except requests.RequestException:
        sandbox.state.count("callback_failures")


def _publish_event(job: dict[str, Any]) -> str:
    return (
        "<Event><![CDATA[PUBLISHJOBFINISH]]></Event><PublishEventInfo>"
        f"<publish_id>{job['publish_id']}</publish_id>"
        f"<publish_status>{job['status']}</publish_status>"
        f"<article_id><![CDATA[{job.get('article_id') or ''}]]></article_id>"
        "</PublishEventInfo>"
    )


def _mass_event(record: dict[str, Any]) -> str:
    """The fields of "事件推送群发结果" on the Batch_Sends page (counts: one follower)."""
    sent = 1 if record["msg_status"] == "SEND_SUCCESS" else 0
    return (
        "<Event><![CDATA[MASSSENDJOBFINISH]]></Event>"
        f"<MsgID>{record['msg_id']}</MsgID><Status><![CDATA[{record['result']}]]></Status>"
        f"<TotalCount>1</TotalCount><FilterCount>1</FilterCount>"
        f"<SentCount>{sent}</SentCount><ErrorCount>{1 - sent}</ErrorCount>"
    )


def _post_event(settings: WeChatSettings, event: str) -> None:
    """POST an event as WeChat does: in plaintext mode, or in safe mode when the sandbox
    holds an AES key (https://developers.weixin.qq.com/doc/subscription/guide/dev/push/
    encryption.md: `encrypt_type=aes` and `msg_signature` added to the query, the body
    `<xml><ToUserName/><Encrypt/></xml>`)."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(4)
    token = settings.callback_token
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    xml = (
        "<xml><ToUserName><![CDATA[gh_sandbox]]></ToUserName>"
        "<FromUserName><![CDATA[sandbox]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"{event}</xml>"
    )
    params = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    if settings.callback_aes_key:
        crypto = WeChatCrypto(token, settings.callback_aes_key, settings.appid)
        sealed = ElementTree.fromstring(crypto.encrypt_message(xml, nonce, timestamp))
        encrypted = sealed.findtext("Encrypt") or ""
        params.update(encrypt_type="aes", msg_signature=sealed.findtext("MsgSignature") or "")
        xml = (
            "<xml><ToUserName><![CDATA[gh_sandbox]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
    requests.post(
        settings.callback_url,
        params=params,
        data=xml.encode(),
        headers={"Content-Type": "text/xml"},
        timeout=5,
    )


def image_type(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "unknown"


def check_article(article: dict[str, Any], materials: dict[str, Any]) -> None:
    """WeChat's draft checks, with its own error codes."""
    if len(str(article.get("title", ""))) > 32 or not article.get("title"):
        raise WeChatError(45003, "title size out of limit")
    if len(str(article.get("author") or "")) > 16:
        raise WeChatError(45110, "author size out of limit")
    if len(str(article.get("digest") or "")) > 128:
        raise WeChatError(45004, "description size out of limit")
    content = str(article.get("content", ""))
    if len(content) >= 20_000 or len(content.encode()) >= 1_000_000:
        raise WeChatError(45002, "content size out of limit")
    if str(article.get("thumb_media_id", "")) not in materials:
        raise WeChatError(40007, "invalid media_id")


def article_record(article: dict[str, Any]) -> dict[str, Any]:
    """The fields of a draft article the account keeps (the rest of the request is dropped)."""
    keys = (
        "title",
        "author",
        "digest",
        "content",
        "content_source_url",
        "thumb_media_id",
        "need_open_comment",
        "only_fans_can_comment",
    )
    return {key: article.get(key) for key in keys}
