"""A local Weibo: the parts of the open API the publisher uses (docs/protocols.md §6, §7).

- `POST /2/statuses/share.json`   form or multipart: `access_token`, `status`, `rip`, `pic`
- `POST /2/statuses/destroy.json` `id`
- `GET  /2/statuses/user_timeline.json` `count`, `page` (newest first, deleted ones hidden)
- `GET  /{uid}/{idstr}`           the public page of a status
The token is taken from `Authorization: OAuth2 <token>` or the `access_token` parameter.
Errors are Weibo's JSON `{"error", "error_code", "request"}` with Weibo's codes and texts.

Controls beyond the shared inspection API (`/_sandbox/...`):
- `POST /_sandbox/weibo/token`        `{"token": "..."}` accept this token from now on
- `POST /_sandbox/weibo/expire-token` the current token expires now (→ 21327)
- `POST /_sandbox/weibo/config`       any of `rate_limit`, `rate_window_seconds`,
                                      `safe_domains`, `repeat_window_seconds`
Records: `statuses` keyed by idstr (`text`, `deleted`, ...), `auth`, `config`.
"""

from __future__ import annotations

import html
import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from channels.sandbox.common import InjectedBusy, InjectedGarbage, SandboxState, inspection_router
from channels.weibo_text import LIMIT_UNITS, fits, host_is_safe

DEFAULT_TOKEN = "sandbox"
SANDBOX_UID = 7_654_321_001
FIRST_ID = 5_000_000_000_000_000
MAX_PIC_BYTES = 5 * 1024 * 1024
BEIJING = timezone(timedelta(hours=8))
LINK = re.compile(r"https?://[^\s<>\"'，。！？；）】]+")
DEFAULT_CONFIG: dict[str, Any] = {
    "rate_limit": 30,
    "rate_window_seconds": 3600,
    "safe_domains": ["127.0.0.1", "localhost"],
    "repeat_window_seconds": 24 * 3600,
}


class WeiboError(Exception):
    """An answer in Weibo's error shape."""

    def __init__(
        self, code: int, error: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.code, self.error, self.status, self.headers = code, error, status, headers or {}


def _records(state: SandboxState) -> dict[str, Any]:
    """The sandbox's records, filled with defaults (also after `/_sandbox/reset`)."""
    records = state.records
    records.setdefault("statuses", {})
    records.setdefault("auth", {"token": DEFAULT_TOKEN, "expired": False})
    config = records.setdefault("config", {})
    for key, value in DEFAULT_CONFIG.items():
        config.setdefault(key, value)
    return records


def _token(request: Request, params: Any) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("oauth2", "bearer") and value.strip():
        return value.strip()
    token = params.get("access_token")
    return str(token) if token else None


def _check_token(state: SandboxState, token: str | None) -> None:
    auth = _records(state)["auth"]
    if not token:
        raise WeiboError(21301, "auth faild!", 401)
    if token != auth["token"]:
        raise WeiboError(21332, "invalid_access_token", 401)
    if auth["expired"]:
        raise WeiboError(21327, "expired_token", 401)


def _window(seconds: float, now: float) -> tuple[int, float]:
    """The fixed window containing `now` (aligned like the publisher's shared store)."""
    start = math.floor(now / seconds) * seconds
    return int(start), start + seconds - now


def _take_rate_slot(state: SandboxState) -> None:
    config = _records(state)["config"]
    start, remaining = _window(float(config["rate_window_seconds"]), time.time())
    key = f"rate_window_{start}"
    with state.lock:
        # One counter per window; older ones are dropped so the counters stay readable.
        for old in [k for k in state.counters if k.startswith("rate_window_") and k != key]:
            del state.counters[old]
        used = state.counters.get(key, 0)
        if used >= int(config["rate_limit"]):
            raise WeiboError(
                10023,
                "User requests out of rate limit!",
                403,
                {"Retry-After": str(max(1, math.ceil(remaining)))},
            )
        state.counters[key] = used + 1


def _created_at(ts: float) -> str:
    return datetime.fromtimestamp(ts, BEIJING).strftime("%a %b %d %H:%M:%S %z %Y")


def _status_json(record: dict[str, Any]) -> dict[str, Any]:
    """A status in Weibo's shape (the fields the publisher and similar clients read)."""
    return {
        "created_at": _created_at(record["created_ts"]),
        "id": int(record["idstr"]),
        "idstr": record["idstr"],
        "mid": record["idstr"],
        "text": record["text"],
        "source": '<a href="https://open.weibo.com" rel="nofollow">publisher</a>',
        "thumbnail_pic": record.get("pic_url"),
        "user": {
            "id": record["uid"],
            "idstr": str(record["uid"]),
            "screen_name": "松山湖发布",
            "profile_url": f"u/{record['uid']}",
        },
        "reposts_count": 0,
        "comments_count": 0,
        "attitudes_count": 0,
    }


def _check_status_text(state: SandboxState, text: str) -> None:
    config = _records(state)["config"]
    if not text.strip():
        raise WeiboError(20008, "content is null!")
    if not fits(text, LIMIT_UNITS):
        raise WeiboError(20012, "Text too long, please input text less than 140 characters!")
    links = LINK.findall(text)
    if not any(host_is_safe(link, config["safe_domains"]) for link in links):
        raise WeiboError(
            10017,
            "parameter (status)'s value invalid,expect (a link on the app's safe domain), "
            f"but get ({links[0] if links else 'no link'}), see doc for more info.",
        )
    cutoff = time.time() - float(config["repeat_window_seconds"])
    for record in _records(state)["statuses"].values():
        if record["text"] == text and not record["deleted"] and record["created_ts"] >= cutoff:
            raise WeiboError(20019, "repeat content!")


async def _picture(upload: UploadFile) -> bytes:
    data = await upload.read()
    if not data:
        raise WeiboError(20007, "does multipart has image?")
    if len(data) > MAX_PIC_BYTES:
        raise WeiboError(20006, "image size too large.")
    if not (data.startswith((b"\xff\xd8", b"\x89PNG", b"GIF8"))):
        raise WeiboError(20005, "unsupported image type, only suport JPG, GIF, PNG!")
    return data


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Weibo sandbox")
    app.state.sandbox = state
    app.include_router(inspection_router(state))
    with state.lock:
        _records(state)
    state.save()

    @app.exception_handler(WeiboError)
    async def weibo_error(request: Request, exc: WeiboError) -> JSONResponse:
        body = {"error": exc.error, "error_code": exc.code, "request": request.url.path}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    async def guarded(write: bool) -> Response | None:
        """Apply injected faults; a returned response is the whole answer."""
        try:
            await state.before_call(write=write)
        except InjectedBusy:
            raise WeiboError(10001, "system error", 500) from None
        except InjectedGarbage:
            return HTMLResponse("<html><body>502 Bad Gateway</body></html>", status_code=200)
        return None

    @app.post("/2/statuses/share.json")
    async def share(request: Request) -> Response:
        form = await request.form()
        _check_token(state, _token(request, form))
        if (injected := await guarded(write=True)) is not None:
            return injected
        if not form.get("rip"):
            raise WeiboError(10016, "miss required parameter (rip) , see doc for more info.")
        text = str(form.get("status") or "")
        pic = form.get("pic")
        picture = await _picture(pic) if isinstance(pic, UploadFile) else None
        with state.lock:
            _check_status_text(state, text)
            _take_rate_slot(state)
            idstr = str(FIRST_ID + state.count("statuses_created"))
            record: dict[str, Any] = {
                "idstr": idstr,
                "uid": SANDBOX_UID,
                "text": text,
                "deleted": False,
                "created_ts": time.time(),
                "pic_bytes": len(picture) if picture else 0,
                "rip": str(form.get("rip")),
            }
            _records(state)["statuses"][idstr] = record
        state.save()
        await state.after_write()
        return JSONResponse(_status_json(record))

    @app.post("/2/statuses/destroy.json")
    async def destroy(request: Request) -> Response:
        form = await request.form()
        _check_token(state, _token(request, form))
        if (injected := await guarded(write=True)) is not None:
            return injected
        idstr = str(form.get("id") or "")
        with state.lock:
            record = _records(state)["statuses"].get(idstr)
            if record is None or record["deleted"]:
                raise WeiboError(20101, "target weibo does not exist!")
            record["deleted"] = True
            record["deleted_ts"] = time.time()
        state.save()
        await state.after_write()
        return JSONResponse(_status_json(record))

    @app.get("/2/statuses/user_timeline.json")
    async def user_timeline(request: Request) -> Response:
        params = request.query_params
        _check_token(state, _token(request, params))
        if (injected := await guarded(write=False)) is not None:
            return injected
        try:
            count = min(100, max(1, int(params.get("count", 20))))
            page = max(1, int(params.get("page", 1)))
        except ValueError:
            raise WeiboError(10008, "param error, see doc for more info.") from None
        with state.lock:
            live = [r for r in _records(state)["statuses"].values() if not r["deleted"]]
            live.sort(key=lambda r: int(r["idstr"]), reverse=True)
            shown = live[(page - 1) * count : page * count]
            body = {
                "statuses": [_status_json(r) for r in shown],
                "total_number": len(live),
                "previous_cursor": 0,
                "next_cursor": 0,
            }
        return JSONResponse(body)

    @app.post("/_sandbox/weibo/token")
    async def set_token(request: Request) -> dict[str, Any]:
        body = await request.json()
        token = body.get("token") if isinstance(body, dict) else None
        if not token:
            raise HTTPException(422, 'expected {"token": "..."}')
        with state.lock:
            _records(state)["auth"] = {"token": str(token), "expired": False}
        state.save()
        return {"status": "ok"}

    @app.post("/_sandbox/weibo/expire-token")
    def expire_token() -> dict[str, Any]:
        with state.lock:
            _records(state)["auth"]["expired"] = True
        state.save()
        return {"status": "expired"}

    @app.post("/_sandbox/weibo/config")
    async def set_config(request: Request) -> dict[str, Any]:
        changes = await request.json()
        if not isinstance(changes, dict) or not set(changes) <= set(DEFAULT_CONFIG):
            raise HTTPException(422, f"config fields are: {', '.join(DEFAULT_CONFIG)}")
        with state.lock:
            config = _records(state)["config"]
            for key, value in changes.items():
                config[key] = list(value) if key == "safe_domains" else float(value)
            config["rate_limit"] = int(config["rate_limit"])
            result = dict(config)
        state.save()
        return result

    @app.get("/{uid}/{idstr}", response_class=HTMLResponse)
    def status_page(uid: str, idstr: str) -> HTMLResponse:
        with state.lock:
            record = _records(state)["statuses"].get(idstr)
            if record is None or record["deleted"] or str(record["uid"]) != uid:
                return HTMLResponse(_page("微博不存在", "抱歉，此微博已被删除或不存在。"), 404)
            text = record["text"]
            when = _created_at(record["created_ts"])
        linked = LINK.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', html.escape(text))
        return HTMLResponse(
            _page("松山湖发布的微博", f"<p>{linked}</p><p><small>{when}</small></p>")
        )

    return app


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><h1>{title}</h1>{body}</body></html>"
    )


__all__ = ["create_app"]
