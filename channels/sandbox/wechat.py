"""A local WeChat official-account API: the real paths, JSON shapes, error codes and quotas.

Emulated (DESIGN §5.1): `cgi-bin/token` (a new token; the previous one lives on for a grace
period) and `cgi-bin/stable_token` (the same token to every caller until it expires; a new one
with `force_refresh`, a few times a day); `media/uploadimg`; `material/add_material?type=thumb`
(JPEG under 64 KB); `draft/add`; `freepublish/submit|get|batchget|getarticle|delete`
(publishing finishes after `publish_delay_seconds`, then a `PUBLISHJOBFINISH` event is POSTed
to `callback_url` if set); `message/mass/sendall|get` (one send a day, clientmsgid remembered
24 h → 45065). Daily quotas: `freepublish/get` 100, mass send 1, and a switch that answers
45009 to everything. Public article pages at `/s/{article_id}`.

Injected timeouts-after-write (`timeout_next_writes`) hit the writes the public can see —
submit, delete, mass send — not the invisible uploads and drafts before them.

Sandbox-only controls, besides the shared `/_sandbox/*` (records are in `/_sandbox/state`):
- `GET|POST /_sandbox/wechat`  settings (`token_grace_seconds`, `token_ttl_seconds`,
  `publish_delay_seconds`, `callback_url`, `callback_token`, `api_quota_exhausted`,
  `mass_per_day`, `freepublish_get_per_day`, `force_refresh_per_day`, `appid`, `secret`)
- `POST /_sandbox/wechat/expire_token`  every issued token expires now
- `POST /_sandbox/wechat/new_day`       daily quotas reset, as at midnight
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import requests
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from channels.sandbox.common import InjectedBusy, InjectedGarbage, SandboxState, inspection_router

THUMB_MAX_BYTES = 64 * 1024
IMAGE_MAX_BYTES = 1024 * 1024
CLIENTMSGID_MEMORY_SECONDS = 24 * 3600


@dataclass
class WeChatSettings:
    appid: str = "sandbox"
    secret: str = "sandbox-secret"
    token_ttl_seconds: int = 7200
    token_grace_seconds: float = 300.0
    publish_delay_seconds: float = 0.3
    callback_url: str = ""
    callback_token: str = "sandbox"
    api_quota_exhausted: bool = False
    mass_per_day: int = 1
    freepublish_get_per_day: int = 100
    force_refresh_per_day: int = 20


class WeChatError(Exception):
    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg, self.extra = errcode, errmsg, extra


def _ok(**body: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **body}


def _new_id(prefix: str = "") -> str:
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
        if force_refresh:
            if self.daily("force_refresh") >= self.settings.force_refresh_per_day:
                raise WeChatError(45009, "reach max api daily quota limit")
            self.daily("force_refresh", 1)
            self.state.count("force_refreshes")
        else:
            live = [
                (value, token)
                for value, token in self.records["tokens"].items()
                if token["stable"] and token["expires_at"] > now
            ]
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
        if record is None:
            raise WeChatError(40001, "invalid credential, access_token is invalid or not latest")
        if record["expires_at"] <= time.time():
            raise WeChatError(42001, "access_token expired")

    def expire_tokens(self) -> None:
        for token in self.records["tokens"].values():
            token["expires_at"] = min(token["expires_at"], time.time() - 1)

    # --- quotas -----------------------------------------------------------------------------

    def daily(self, name: str, add: int = 0) -> int:
        today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
        daily = self.records["daily"]
        if daily.get("day") != today:
            daily.clear()
            daily["day"] = today
        daily[name] = daily.get(name, 0) + add
        return int(daily[name])

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
            article_id = _new_id("a_")
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


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="WeChat official account sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = state
    sandbox = WeChatSandbox(state)
    app.state.wechat = sandbox
    app.include_router(inspection_router(state))

    async def guarded(request: Request, *, write: bool, needs_token: bool = True) -> Any:
        """Apply faults, quota and token checks; returns the JSON body (or None)."""
        state.count(f"calls:{request.url.path}")
        try:
            await state.before_call(write=write)
        except InjectedBusy:
            raise WeChatError(-1, "system error") from None
        with state.lock:
            if sandbox.settings.api_quota_exhausted:
                raise WeChatError(45009, "reach max api daily quota limit")
            if needs_token:
                sandbox.check_token(request.query_params.get("access_token"))
        if request.headers.get("content-type", "").startswith("multipart/"):
            return None
        raw = await request.body()
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise WeChatError(44002, "empty post data or invalid json") from None

    @app.exception_handler(WeChatError)
    async def wechat_error(_request: Request, exc: WeChatError) -> JSONResponse:
        return JSONResponse({"errcode": exc.errcode, "errmsg": exc.errmsg, **exc.extra})

    @app.exception_handler(InjectedGarbage)
    async def garbage(_request: Request, _exc: InjectedGarbage) -> HTMLResponse:
        return HTMLResponse("<html><body>502 Bad Gateway (sandbox garbage)</body></html>")

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # --- tokens -----------------------------------------------------------------------------

    @app.get("/cgi-bin/token")
    async def token(request: Request) -> dict[str, Any]:
        await guarded(request, write=False, needs_token=False)
        q = request.query_params
        with state.lock:
            sandbox.check_credentials(q.get("appid"), q.get("secret"))
            state.count("token_calls")
            issued = sandbox.issue_token(previous_lives=sandbox.settings.token_grace_seconds)
            state.save()
        return issued

    @app.post("/cgi-bin/stable_token")
    async def stable_token(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=False, needs_token=False)
        with state.lock:
            sandbox.check_credentials(body.get("appid"), body.get("secret"))
            state.count("stable_token_calls")
            issued = sandbox.stable_token(bool(body.get("force_refresh")))
            state.save()
        return issued

    # --- media ------------------------------------------------------------------------------

    async def uploaded(request: Request) -> tuple[bytes, str]:
        form = await request.form()
        media = form.get("media")
        if media is None or isinstance(media, str):
            raise WeChatError(41005, "media data missing")
        data = await media.read()
        return data, _image_type(data)

    @app.post("/cgi-bin/media/uploadimg")
    async def uploadimg(request: Request) -> dict[str, Any]:
        await guarded(request, write=True)
        data, kind = await uploaded(request)
        if kind not in ("jpeg", "png"):
            raise WeChatError(40005, "invalid file type")
        if len(data) >= IMAGE_MAX_BYTES:
            raise WeChatError(40009, "invalid image size")
        digest = hashlib.sha256(data).hexdigest()[:24]
        url = f"{base_url(request)}/mmbiz/{digest}.{'jpg' if kind == 'jpeg' else 'png'}"
        with state.lock:
            state.records["images"][url] = {"size": len(data), "type": kind}
            state.save()
        return {"url": url}

    @app.post("/cgi-bin/material/add_material")
    async def add_material(request: Request) -> dict[str, Any]:
        await guarded(request, write=True)
        material_type = request.query_params.get("type", "")
        if material_type not in ("image", "thumb"):
            raise WeChatError(40004, "invalid media type")
        data, kind = await uploaded(request)
        if material_type == "thumb" and kind != "jpeg":
            raise WeChatError(40005, "invalid file type")
        if material_type == "thumb" and len(data) > THUMB_MAX_BYTES:
            raise WeChatError(40009, "invalid image size")
        media_id = _new_id("m_")
        url = f"{base_url(request)}/mmbiz/{media_id}.jpg"
        with state.lock:
            state.records["materials"][media_id] = {
                "type": material_type,
                "size": len(data),
                "format": kind,
                "url": url,
            }
            state.save()
        return {"media_id": media_id, "url": url}

    # --- drafts and publishing --------------------------------------------------------------

    @app.post("/cgi-bin/draft/add")
    async def draft_add(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=True)
        articles = body.get("articles")
        if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
            raise WeChatError(40114, "invalid index value")
        with state.lock:
            for article in articles:
                _check_article(article, state.records["materials"])
            media_id = _new_id("d_")
            state.records["drafts"][media_id] = {
                "articles": [_article_record(a) for a in articles],
                "create_time": int(time.time()),
            }
            state.save()
        return {"media_id": media_id}

    @app.post("/cgi-bin/freepublish/submit")
    async def freepublish_submit(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=True)
        media_id = str(body.get("media_id", ""))
        with state.lock:
            if media_id not in state.records["drafts"]:
                raise WeChatError(40007, "invalid media_id")
            publish_id = str(100_000_000 + len(state.records["publishes"]) + 1)
            delay = sandbox.settings.publish_delay_seconds
            state.records["publishes"][publish_id] = {
                "publish_id": publish_id,
                "media_id": media_id,
                "status": 1,
                "due_at": time.time() + delay,
                "article_id": None,
                "fail_idx": [],
            }
            state.count("publishes_submitted")
            state.save()
        _finish_later(sandbox, publish_id, base_url(request), delay)
        await state.after_write()
        return _ok(publish_id=publish_id, msg_data_id=int(publish_id))

    @app.post("/cgi-bin/freepublish/get")
    async def freepublish_get(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=False)
        publish_id = str(body.get("publish_id", ""))
        with state.lock:
            if sandbox.daily("freepublish_get") >= sandbox.settings.freepublish_get_per_day:
                raise WeChatError(45009, "reach max api daily quota limit")
            sandbox.daily("freepublish_get", 1)
            sandbox.finish_publish(publish_id, base_url(request))
            job = state.records["publishes"].get(publish_id)
            if job is None:
                raise WeChatError(53600, "Article ID 无效")
            answer: dict[str, Any] = {
                "publish_id": publish_id,
                "publish_status": job["status"],
            }
            article = state.records["articles"].get(job["article_id"] or "")
            if article is not None and article["deleted"]:
                answer["publish_status"] = 5
            elif job["status"] == 0 and article is not None:
                items = [
                    {"idx": i + 1, "article_url": n["url"]}
                    for i, n in enumerate(article["news_item"])
                ]
                answer.update(
                    article_id=job["article_id"],
                    article_detail={"count": len(items), "item": items},
                )
            if job["status"] not in (0, 1):
                answer["fail_idx"] = job["fail_idx"]
            return answer

    @app.post("/cgi-bin/freepublish/batchget")
    async def freepublish_batchget(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=False)
        offset, count = int(body.get("offset", 0)), min(20, max(1, int(body.get("count", 20))))
        no_content = bool(body.get("no_content", 0))
        with state.lock:
            sandbox.settle_due(base_url(request))
            articles = sorted(
                state.records["articles"].values(), key=lambda a: a["update_time"], reverse=True
            )
            page = articles[offset : offset + count]
            items = [
                {
                    "article_id": a["article_id"],
                    "content": {
                        "news_item": [
                            {k: v for k, v in n.items() if not (no_content and k == "content")}
                            for n in a["news_item"]
                        ]
                    },
                    "update_time": a["update_time"],
                }
                for a in page
            ]
        return {"total_count": len(articles), "item_count": len(items), "item": items}

    @app.post("/cgi-bin/freepublish/getarticle")
    async def freepublish_getarticle(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=False)
        with state.lock:
            article = state.records["articles"].get(str(body.get("article_id", "")))
            if article is None:
                raise WeChatError(53600, "Article ID 无效")
            return {"news_item": article["news_item"]}

    @app.post("/cgi-bin/freepublish/delete")
    async def freepublish_delete(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=True)
        index = int(body.get("index", 0))
        with state.lock:
            article = state.records["articles"].get(str(body.get("article_id", "")))
            if article is None:
                raise WeChatError(53600, "Article ID 无效")
            for position, news in enumerate(article["news_item"], start=1):
                if index in (0, position):
                    news["is_deleted"] = True
            article["deleted"] = all(n["is_deleted"] for n in article["news_item"])
            state.count("articles_deleted")
            state.save()
        await state.after_write()
        return _ok()

    # --- mass send --------------------------------------------------------------------------

    @app.post("/cgi-bin/message/mass/sendall")
    async def mass_sendall(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=True)
        clientmsgid = str(body.get("clientmsgid", ""))
        media_id = str((body.get("mpnews") or {}).get("media_id", ""))
        with state.lock:
            now = time.time()
            seen = state.records["clientmsgids"].get(clientmsgid) if clientmsgid else None
            if seen and now - seen["at"] < CLIENTMSGID_MEMORY_SECONDS:
                raise WeChatError(45065, "clientmsgid exist", msg_id=seen["msg_id"])
            if body.get("msgtype") != "mpnews" or media_id not in state.records["drafts"]:
                raise WeChatError(40007, "invalid media_id")
            if sandbox.daily("mass") >= sandbox.settings.mass_per_day:
                raise WeChatError(45028, "has no masssend quota")
            sandbox.daily("mass", 1)
            msg_id = str(1_000_000_000 + len(state.records["mass"]) + 1)
            state.records["mass"][msg_id] = {
                "msg_id": msg_id,
                "media_id": media_id,
                "filter": body.get("filter"),
                "clientmsgid": clientmsgid,
                "msg_status": "SEND_SUCCESS",
                "articles": [a["title"] for a in state.records["drafts"][media_id]["articles"]],
                "at": now,
            }
            if clientmsgid:
                state.records["clientmsgids"][clientmsgid] = {"msg_id": msg_id, "at": now}
            state.count("mass_sends")
            state.save()
        await state.after_write()
        return {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": int(msg_id),
            "msg_data_id": int(msg_id),
        }

    @app.post("/cgi-bin/message/mass/get")
    async def mass_get(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=False)
        with state.lock:
            record = state.records["mass"].get(str(body.get("msg_id", "")))
            if record is None:
                raise WeChatError(40007, "invalid msg_id")
            return {"msg_id": int(record["msg_id"]), "msg_status": record["msg_status"]}

    # --- public pages and sandbox controls --------------------------------------------------

    @app.get("/s/{article_id}", response_class=HTMLResponse)
    def article_page(article_id: str, request: Request) -> HTMLResponse:
        with state.lock:
            sandbox.settle_due(base_url(request))
            article = state.records["articles"].get(article_id)
            idx = int(request.query_params.get("idx", "1"))
            if article is None or not 1 <= idx <= len(article["news_item"]):
                raise HTTPException(404, "该内容已被发布者删除")
            news = article["news_item"][idx - 1]
            if news["is_deleted"]:
                raise HTTPException(404, "该内容已被发布者删除")
        source = news.get("content_source_url") or ""
        link = f'<p><a href="{html.escape(source)}">阅读原文</a></p>' if source else ""
        return HTMLResponse(
            "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<title>{html.escape(news['title'])}</title></head><body>"
            f"<h1>{html.escape(news['title'])}</h1>"
            f"<p class='author'>{html.escape(news.get('author') or '')}</p>"
            f"<div id='js_content'>{news['content']}</div>{link}</body></html>"
        )

    @app.get("/_sandbox/wechat")
    def get_settings() -> dict[str, Any]:
        return asdict(sandbox.settings)

    @app.post("/_sandbox/wechat")
    async def set_settings(request: Request) -> dict[str, Any]:
        changes = await request.json()
        known = {f.name for f in fields(WeChatSettings)}
        if not isinstance(changes, dict) or not set(changes) <= known:
            raise HTTPException(422, f"wechat settings are: {', '.join(sorted(known))}")
        with state.lock:
            for key, value in changes.items():
                setattr(sandbox.settings, key, type(getattr(sandbox.settings, key))(value))
        return asdict(sandbox.settings)

    @app.post("/_sandbox/wechat/expire_token")
    def expire_token() -> dict[str, str]:
        with state.lock:
            sandbox.expire_tokens()
            state.save()
        return {"status": "expired"}

    @app.post("/_sandbox/wechat/new_day")
    def new_day() -> dict[str, str]:
        with state.lock:
            sandbox.new_day()
            state.save()
        return {"status": "quotas reset"}

    @app.get("/mmbiz/{name}")
    def cdn(name: str) -> Response:
        return Response(status_code=204)

    return app


def _finish_later(sandbox: WeChatSandbox, publish_id: str, base_url: str, delay: float) -> None:
    """Finish the publish job after `delay` and send WeChat's PUBLISHJOBFINISH event."""

    def finish() -> None:
        with sandbox.state.lock:
            job = sandbox.finish_publish(publish_id, base_url)
            url, token = sandbox.settings.callback_url, sandbox.settings.callback_token
        if job is None or not url:
            return
        try:
            _post_event(url, token, job)
        except requests.RequestException:
            sandbox.state.count("callback_failures")

    timer = threading.Timer(delay, finish)
    timer.daemon = True
    timer.start()


def _post_event(url: str, token: str, job: dict[str, Any]) -> None:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(4)
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    xml = (
        "<xml><ToUserName><![CDATA[gh_sandbox]]></ToUserName>"
        "<FromUserName><![CDATA[sandbox]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[PUBLISHJOBFINISH]]></Event><PublishEventInfo>"
        f"<publish_id>{job['publish_id']}</publish_id>"
        f"<publish_status>{job['status']}</publish_status>"
        f"<article_id><![CDATA[{job.get('article_id') or ''}]]></article_id>"
        "</PublishEventInfo></xml>"
    )
    requests.post(
        url,
        params={"signature": signature, "timestamp": timestamp, "nonce": nonce},
        data=xml.encode(),
        headers={"Content-Type": "text/xml"},
        timeout=5,
    )


def _image_type(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "unknown"


def _check_article(article: dict[str, Any], materials: dict[str, Any]) -> None:
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


def _article_record(article: dict[str, Any]) -> dict[str, Any]:
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
