"""A local WeChat official-account API: the real paths, JSON shapes, error codes and quotas.

Emulated (docs/protocols.md §5): `cgi-bin/token` (a new token; the previous one lives on for a grace
period) and `cgi-bin/stable_token` (the same token to every caller until it expires; a new one
with `force_refresh`, a few times a day); `media/uploadimg`; `material/add_material?type=thumb`
(JPEG under 64 KB); `draft/add`; `freepublish/submit|get|batchget|getarticle|delete`
(publishing finishes after `publish_delay_seconds`, then a `PUBLISHJOBFINISH` event is POSTed
to `callback_url` if set); `message/mass/sendall|get|delete` (one send a day, clientmsgid
remembered 24 h → 45065; the result follows after `mass_delay_seconds` as `mass/get`'s status
and a `MASSSENDJOBFINISH` event, refused as by an administrator under 群发保护 when
`reject_next_mass` is set; only a sent message can be deleted, one article or all);
`material/del_material`, and the cap on thumb materials (`material_cap`, 45034 past it). Daily
quotas per endpoint as WeChat's API_Call_Limits page states them (`wechat_account.DAILY_QUOTAS`:
45009 past them, until midnight in Beijing; every refused call counted as
`refused:<errcode>`), forced token refreshes 20 a day and 30 s apart, mass send 1, and a switch
that answers 45009 to everything. Public article pages at `/s/{article_id}`.

Injected timeouts-after-write (`timeout_next_writes`) hit the writes the public can see —
submit, delete, mass send — not the invisible uploads and drafts before them.

This module is the HTTP surface: `create_app` and its routes. The account's state and WeChat's
rules behind them (tokens, daily quotas, publish jobs finishing and the callback, the draft
check) are in `channels.sandbox.wechat_account`.

Sandbox-only controls, besides the shared `/_sandbox/*` (records are in `/_sandbox/state`):
- `GET|POST /_sandbox/wechat`  settings (`token_grace_seconds`, `token_ttl_seconds`,
  `publish_delay_seconds`, `callback_url`, `callback_token`, `callback_aes_key` (set: the
  callback speaks safe mode), `api_quota_exhausted`,
  `mass_per_day`, `daily_quotas` (endpoint → calls a day, over the official ones),
  `unauthorized` (endpoints answered 48001), `force_refresh_per_day`, `appid`, `secret`,
  `material_cap`, `mass_delay_seconds`, `reject_next_mass` (the next mass send is refused))
- `POST /_sandbox/wechat/expire_token`  every issued token expires now
- `POST /_sandbox/wechat/refuse_token`  every issued token is refused (40001), though
  `stable_token` without force still hands it out
- `POST /_sandbox/wechat/new_day`       daily quotas reset, as at midnight
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from dataclasses import asdict, fields
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from channels.sandbox.common import InjectedBusy, InjectedGarbage, SandboxState, inspection_router
from channels.sandbox.wechat_account import (
    CLIENTMSGID_MEMORY_SECONDS,
    IMAGE_MAX_BYTES,
    THUMB_MAX_BYTES,
    WeChatError,
    WeChatSandbox,
    WeChatSettings,
    article_record,
    check_article,
    finish_later,
    finish_mass_later,
    image_type,
    new_id,
    ok_answer,
)


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
                sandbox.admit(request.url.path.removeprefix("/cgi-bin/"))
        if request.headers.get("content-type", "").startswith("multipart/"):
            return None
        raw = await request.body()
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise WeChatError(44002, "empty post data or invalid json") from None

    @app.exception_handler(WeChatError)
    async def wechat_error(_request: Request, exc: WeChatError) -> JSONResponse:
        state.count(f"refused:{exc.errcode}")
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
        return data, image_type(data)

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
        media_id = new_id("m_")
        url = f"{base_url(request)}/mmbiz/{media_id}.jpg"
        with state.lock:
            held = sum(1 for m in state.records["materials"].values() if m["type"] != "image")
            if material_type != "image" and held >= sandbox.settings.material_cap:
                # As WeChat answers it past the cap of the add_material page (community thread
                # https://developers.weixin.qq.com/community/develop/doc/0008a61ffd4e88a1226c1bdb651c00).
                raise WeChatError(45034, "media file count is out of limit")
            state.records["materials"][media_id] = {
                "type": material_type,
                "size": len(data),
                "format": kind,
                "url": url,
            }
            state.save()
        return {"media_id": media_id, "url": url}

    @app.post("/cgi-bin/material/del_material")
    async def del_material(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=True)
        with state.lock:
            if state.records["materials"].pop(str(body.get("media_id", "")), None) is None:
                raise WeChatError(40007, "invalid media_id")
            state.count("materials_deleted")
            state.save()
        return ok_answer()

    # --- drafts and publishing --------------------------------------------------------------

    @app.post("/cgi-bin/draft/add")
    async def draft_add(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=True)
        articles = body.get("articles")
        if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
            raise WeChatError(40114, "invalid index value")
        with state.lock:
            for article in articles:
                check_article(article, state.records["materials"])
            media_id = new_id("d_")
            state.records["drafts"][media_id] = {
                "articles": [article_record(a) for a in articles],
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
        finish_later(sandbox, publish_id, base_url(request), delay)
        await state.after_write()
        return ok_answer(publish_id=publish_id, msg_data_id=int(publish_id))

    @app.post("/cgi-bin/freepublish/get")
    async def freepublish_get(request: Request) -> dict[str, Any]:
        body = await guarded(request, write=False)
        publish_id = str(body.get("publish_id", ""))
        with state.lock:
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
        """Each news_item as drafted (`content_source_url`, the "阅读原文" link, included) plus
        `url` and `is_deleted`, as https://developers.weixin.qq.com/doc/service/api/public/
        api_freepublishgetarticle lists them."""
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
        return ok_answer()

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
                "msg_status": "SENDING",
                "deleted_idx": [],
                "articles": [a["title"] for a in state.records["drafts"][media_id]["articles"]],
                "at": now,
            }
            if clientmsgid:
                state.records["clientmsgids"][clientmsgid] = {"msg_id": msg_id, "at": now}
            state.count("mass_sends")
            rejected, sandbox.settings.reject_next_mass = sandbox.settings.reject_next_mass, False
            state.save()
        finish_mass_later(sandbox, msg_id, rejected, sandbox.settings.mass_delay_seconds)
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

    @app.post("/cgi-bin/message/mass/delete")
    async def mass_delete(request: Request) -> dict[str, Any]:
        """Only a message that was sent can be deleted; `article_idx` 0 deletes all of it
        (https://developers.weixin.qq.com/doc/service/api/notify/message/api_deletemassmsg)."""
        body = await guarded(request, write=True)
        index = int(body.get("article_idx") or 0)
        with state.lock:
            record = state.records["mass"].get(str(body.get("msg_id", "")))
            if record is None or record["msg_status"] not in ("SEND_SUCCESS", "DELETE"):
                raise WeChatError(40059, "invalid msg id")
            positions = range(1, len(record["articles"]) + 1)
            if index not in (0, *positions):
                raise WeChatError(40059, "invalid msg id")
            deleted = set(record["deleted_idx"]) | ({index} if index else set(positions))
            record["deleted_idx"] = sorted(deleted)
            if set(positions) <= deleted:
                record["msg_status"] = "DELETE"
            state.count("mass_articles_deleted")
            state.save()
        await state.after_write()
        return ok_answer()

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

    @app.post("/_sandbox/wechat/refuse_token")
    def refuse_token() -> dict[str, str]:
        with state.lock:
            sandbox.refuse_tokens()
            state.save()
        return {"status": "refused"}

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
