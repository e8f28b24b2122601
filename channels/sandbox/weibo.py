"""A local Weibo: the parts of the open API the publisher uses (docs/protocols.md §6, §7).

- `POST /2/statuses/share.json`   form or multipart: `access_token`, `status`, `rip`, `pic`
- `POST /2/statuses/destroy.json` `id`
- `GET  /2/statuses/show.json`    `id` (20101 for a post that does not exist)
- `GET  /2/statuses/user_timeline.json` `count`, `page`: only the newest `timeline_size`
                                  posts, newest (by `created_at`) first, deleted ones hidden
- `GET  /t/{code}`                a t.cn-style short link: a 302 to the link it stands for
- `GET  /{uid}/{idstr}`           the public page of a status
The token is taken from `Authorization: OAuth2 <token>` or the `access_token` parameter.
Errors are Weibo's JSON `{"error", "error_code", "request"}` with Weibo's codes and texts.

The rules are the documentation's, written here on their own (never the adapter's code, so the
sandbox can catch the adapter getting them wrong):
- `status` (https://open.weibo.com/wiki/2/statuses/share): at most 140 characters, a
  character up to U+00FF counting half, any other one, rounded up; a link counts as the 20
  bytes of its short link (plus its bytes beyond 140); no `#topic#`; a link on the app's
  safe domain; `rip` required; `pic` JPEG, GIF or PNG under 5 MB.
- The text a client reads shows every link as a short link (`{short_link_base}{code}`, by
  default this sandbox's own `/t/`), as Weibo shows t.cn links; the records keep what was sent.
- Calls per user: `rate_limit` posts per `rate_window_seconds` (30 an hour), and
  `daily_calls` calls a Beijing day (100), https://open.weibo.com/wiki/Rate-limiting; over
  either, 10023 (https://open.weibo.com/wiki/Error_code).
- `slow_posts`: that many next shares are posted but answered 20032 "Update success, while
  server slow now".

Controls beyond the shared inspection API (`/_sandbox/...`):
- `POST /_sandbox/weibo/token`        `{"token": "..."}` accept this token from now on
- `POST /_sandbox/weibo/expire-token` the current token expires now (→ 21327)
- `POST /_sandbox/weibo/config`       any of `DEFAULT_CONFIG`'s fields
- `POST /_sandbox/weibo/history`      `{"text": "...", "age_seconds": N}` a post the account
                                      made N seconds ago (its history: a real government
                                      account's timeline reaches back before our posts); its
                                      id is below every share's, as Weibo's ids grow with time
Records: `statuses` keyed by idstr (`text`, `deleted`, ...), `short_links`, `auth`, `config`.
"""

from __future__ import annotations

import html
import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from channels.sandbox.common import InjectedBusy, InjectedGarbage, SandboxState, inspection_router

DEFAULT_TOKEN = "sandbox"
SANDBOX_UID = 7_654_321_001
FIRST_ID = 5_000_000_000_000_000
MAX_PIC_BYTES = 5 * 1024 * 1024
BEIJING = timezone(timedelta(hours=8))
LINK = re.compile(r"https?://[\w\-.~:/?#@!$&*+,;=%]+", re.ASCII)  # ASCII URL characters
MAX_CHARS = 140
SHORT_LINK_BYTES = 20
TOPIC = re.compile(r"#[^#]+#")
DEFAULT_CONFIG: dict[str, Any] = {
    "rate_limit": 30,
    "rate_window_seconds": 3600,
    "daily_calls": 100,
    "safe_domains": ["127.0.0.1", "localhost"],
    "repeat_window_seconds": 24 * 3600,
    "timeline_size": 5,
    "short_link_base": None,  # None: this sandbox's own /t/
    "slow_posts": 0,
}
TEXT_FIELDS = ("short_link_base",)
IMAGE_MAGIC = {"jpeg": b"\xff\xd8", "png": b"\x89PNG", "gif": b"GIF8"}
LIST_FIELDS = ("safe_domains",)
INT_FIELDS = ("rate_limit", "daily_calls", "timeline_size", "slow_posts")


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
    records.setdefault("short_links", {})
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


def _spend_daily_call(state: SandboxState) -> None:
    """Count one call of the user today (Beijing); 10023 once `daily_calls` are spent."""
    config = _records(state)["config"]
    now = datetime.now(BEIJING)
    key = f"daily_calls_{now.date().isoformat()}"
    with state.lock:
        for old in [k for k in state.counters if k.startswith("daily_calls_") and k != key]:
            del state.counters[old]
        used = state.counters.get(key, 0)
        if used >= int(config["daily_calls"]):
            midnight = datetime.combine(
                now.date() + timedelta(days=1), datetime.min.time(), BEIJING
            )
            wait = max(1, math.ceil((midnight - now).total_seconds()))
            raise WeiboError(
                10023, "User requests out of rate limit!", 403, {"Retry-After": str(wait)}
            )
        state.counters[key] = used + 1


def _authorised(state: SandboxState, request: Request, params: Any) -> None:
    """The caller's token is good, and one of the user's calls of the day is spent."""
    _check_token(state, _token(request, params))
    _spend_daily_call(state)


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


def _short_link(state: SandboxState, url: str, base: str) -> str:
    """The short link standing for `url` (made on first use, kept in the records)."""
    with state.lock:
        links = _records(state)["short_links"]
        code = next((c for c, target in links.items() if target == url), None)
        if code is None:
            code = f"A{state.count('short_links_made'):05x}"
            links[code] = url
    return f"{base}{code}"


def _shown(state: SandboxState, text: str, base: str) -> str:
    """`text` as Weibo shows it: every link replaced by its short link."""
    return LINK.sub(lambda link: _short_link(state, link.group(0), base), text)


def _status_json(state: SandboxState, record: dict[str, Any], base: str) -> dict[str, Any]:
    """A status in Weibo's shape (the fields the publisher and similar clients read), its
    links shown as short links under `base`."""
    return {
        "created_at": _created_at(record["created_ts"]),
        "id": int(record["idstr"]),
        "idstr": record["idstr"],
        "mid": record["idstr"],
        "text": _shown(state, record["text"], base),
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


def _bytes(text: str) -> int:
    """Weibo's byte count: a character up to U+00FF is one byte, any other two."""
    return sum(1 if ord(char) <= 0xFF else 2 for char in text)


def _weibo_length(text: str) -> int:
    """Characters as Weibo counts them: two bytes a character, rounded up; a link is the 20
    bytes of the short link shown for it (plus whatever it has beyond 140 bytes)."""
    links = LINK.findall(text)
    link_bytes = sum(SHORT_LINK_BYTES + max(0, _bytes(link) - MAX_CHARS) for link in links)
    return math.ceil((link_bytes + _bytes(LINK.sub("", text))) / 2)


def _on_safe_domain(link: str, domains: list[str]) -> bool:
    host = (urlsplit(link).hostname or "").lower()
    return any(host == d.lower() or host.endswith("." + d.lower()) for d in domains if d)


def _check_status_text(state: SandboxState, text: str) -> None:
    config = _records(state)["config"]
    if not text.strip():
        raise WeiboError(20008, "content is null!")
    if _weibo_length(text) > MAX_CHARS:
        raise WeiboError(20012, "Text too long, please input text less than 140 characters!")
    topic = TOPIC.search(text)
    if topic:
        raise WeiboError(
            10017,
            "parameter (status)'s value invalid,expect (text without #topic#), "
            f"but get ({topic.group(0)}), see doc for more info.",
        )
    links = LINK.findall(text)
    if not any(_on_safe_domain(link, config["safe_domains"]) for link in links):
        raise WeiboError(
            10017,
            "parameter (status)'s value invalid,expect (a link on the app's safe domain), "
            f"but get ({links[0] if links else 'no link'}), see doc for more info.",
        )
    cutoff = time.time() - float(config["repeat_window_seconds"])
    for record in _records(state)["statuses"].values():
        if record["text"] == text and not record["deleted"] and record["created_ts"] >= cutoff:
            raise WeiboError(20019, "repeat content!")


def _live(state: SandboxState, idstr: str) -> dict[str, Any]:
    """The status `idstr`; 20101 when there is none or it was deleted."""
    record: dict[str, Any] | None = _records(state)["statuses"].get(idstr)
    if record is None or record["deleted"]:
        raise WeiboError(20101, "target weibo does not exist!")
    return record


def _config_value(key: str, value: Any) -> Any:
    if key in LIST_FIELDS:
        return list(value)
    if key in TEXT_FIELDS:
        return None if value is None else str(value)
    return int(value) if key in INT_FIELDS else float(value)


def _seconds(value: Any) -> float | None:
    """`value` as a number of seconds ≥ 0, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _image_format(data: bytes) -> str:
    return next(name for name, magic in IMAGE_MAGIC.items() if data.startswith(magic))


async def _picture(upload: UploadFile) -> bytes:
    data = await upload.read()
    if not data:
        raise WeiboError(20007, "does multipart has image?")
    if len(data) > MAX_PIC_BYTES:
        raise WeiboError(20006, "image size too large.")
    if not data.startswith(tuple(IMAGE_MAGIC.values())):
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

    def short_base(request: Request) -> str:
        configured = _records(state)["config"]["short_link_base"]
        return str(configured) if configured else f"{str(request.base_url).rstrip('/')}/t/"

    @app.post("/2/statuses/share.json")
    async def share(request: Request) -> Response:
        form = await request.form()
        _authorised(state, request, form)
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
                "pic_format": _image_format(picture) if picture else None,
                "rip": str(form.get("rip")),
            }
            _records(state)["statuses"][idstr] = record
            config = _records(state)["config"]
            slow = config["slow_posts"] > 0
            config["slow_posts"] = max(0, config["slow_posts"] - 1)
        state.save()
        if slow:  # posted, yet answered as an error
            raise WeiboError(
                20032, "Update success, while server slow now, please wait 1-2 minutes"
            )
        await state.after_write()
        return JSONResponse(_status_json(state, record, short_base(request)))

    @app.post("/2/statuses/destroy.json")
    async def destroy(request: Request) -> Response:
        form = await request.form()
        _authorised(state, request, form)
        if (injected := await guarded(write=True)) is not None:
            return injected
        idstr = str(form.get("id") or "")
        with state.lock:
            record = _live(state, idstr)
            record["deleted"] = True
            record["deleted_ts"] = time.time()
        state.save()
        await state.after_write()
        return JSONResponse(_status_json(state, record, short_base(request)))

    @app.get("/2/statuses/show.json")
    async def show(request: Request) -> Response:
        params = request.query_params
        _authorised(state, request, params)
        if (injected := await guarded(write=False)) is not None:
            return injected
        with state.lock:
            return JSONResponse(
                _status_json(state, _live(state, str(params.get("id", ""))), short_base(request))
            )

    @app.get("/2/statuses/user_timeline.json")
    async def user_timeline(request: Request) -> Response:
        params = request.query_params
        _authorised(state, request, params)
        if (injected := await guarded(write=False)) is not None:
            return injected
        try:
            count = min(100, max(1, int(params.get("count", 20))))
            page = max(1, int(params.get("page", 1)))
        except ValueError:
            raise WeiboError(10008, "param error, see doc for more info.") from None
        with state.lock:
            live = [r for r in _records(state)["statuses"].values() if not r["deleted"]]
            live.sort(key=lambda r: (r["created_ts"], int(r["idstr"])), reverse=True)
            newest = live[: int(_records(state)["config"]["timeline_size"])]
            shown = newest[(page - 1) * count : page * count]
            body = {
                "statuses": [_status_json(state, r, short_base(request)) for r in shown],
                "total_number": len(newest),
                "previous_cursor": 0,
                "next_cursor": 0,
            }
        return JSONResponse(body)

    @app.api_route("/t/{code}", methods=["GET", "HEAD"])
    def short_link(code: str) -> Response:
        with state.lock:
            target = _records(state)["short_links"].get(code)
        if target is None:
            return HTMLResponse(_page("链接不存在", "此短链接不存在。"), 404)
        return Response(status_code=302, headers={"Location": target})

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
                config[key] = _config_value(key, value)
            result = dict(config)
        state.save()
        return result

    @app.post("/_sandbox/weibo/history")
    async def add_history(request: Request) -> dict[str, Any]:
        body = await request.json()
        text = body.get("text") if isinstance(body, dict) else None
        age = _seconds(body.get("age_seconds")) if isinstance(body, dict) else None
        if not (isinstance(text, str) and text.strip()) or age is None:
            raise HTTPException(422, 'expected {"text": "...", "age_seconds": N}, N ≥ 0')
        with state.lock:
            idstr = str(FIRST_ID - state.count("history_made"))
            record: dict[str, Any] = {
                "idstr": idstr,
                "uid": SANDBOX_UID,
                "text": text,
                "deleted": False,
                "created_ts": time.time() - age,
                "pic_bytes": 0,
                "pic_format": None,
                "rip": None,
            }
            _records(state)["statuses"][idstr] = record
        state.save()
        return _status_json(state, record, short_base(request))

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
