"""A local official-website CMS speaking the protocol of docs/protocols.md §2, with public pages.

API (HMAC-signed, see `channels.signing`):
    PUT    /api/articles/{external_id}   upsert: 201 created / 200 updated or unchanged
    GET    /api/articles/{external_id}   200 the published article / 404
    DELETE /api/articles/{external_id}   204 withdrawn / 404 absent or already withdrawn
Errors are JSON `{"code", "message"}`: 401 `bad_signature`, 400/422 naming the field,
503 `busy` (injected).

Public pages: `/`, `/articles/{id}.html`, `/columns/{code}/`, `/rss.xml`, `/sitemap.xml`.
Withdrawn articles leave every public page; their article page answers 404 "该信息已撤回".

State: `records["articles"][external_id]` with `status` "published" | "withdrawn" and
`versions`; counters `creates`, `updates`, `unchanged`, `deletes`.

The signed-API helpers here (`Refusal`, `authenticated_json`, `install_api_errors`, the field
checks) are shared with the catalogue sandbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from channels.sandbox.common import InjectedBusy, InjectedGarbage, SandboxState, inspection_router
from channels.signing import verify

SANDBOX_APP_ID = "sandbox"
SANDBOX_SECRET = "sandbox-secret"
TITLE_MAX_CHARS = 200
BODY_MAX_BYTES = 1_000_000
CHINA_TIME = timezone(timedelta(hours=8))
BUSY_MESSAGE = "服务繁忙，请稍后再试"
GARBAGE_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><p>网关错误</p></body></html>"
)
EXTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
COLUMN_CODE = re.compile(r"[a-z0-9_-]{1,32}")
# Display names of the seed domains (docs/protocols.md §3); an unknown column shows its code.
COLUMN_NAMES = {
    "poverty": "脱贫攻坚",
    "welfare": "社会救助和社会福利",
    "education": "教育",
    "health": "基本医疗卫生",
    "environment": "环境保护",
    "disaster": "灾害事故救援",
    "culture": "公共文化体育",
}

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "xml"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- shared by the signed-API sandboxes ------------------------------------------------------


class Refusal(Exception):
    """An API request the sandbox refuses: answered `status` with JSON {code, message}."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return JSONResponse(body, status_code=self.status)


def invalid(field: str, message: str, status: int = 422) -> Refusal:
    return Refusal(status, "invalid_field", f"{field}: {message}", field)


def install_api_errors(app: FastAPI) -> None:
    """Answer refusals and injected faults the way the channel's API does."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return exc.response()

    async def busy(request: Request, exc: Exception) -> Response:
        return JSONResponse({"code": "busy", "message": BUSY_MESSAGE}, status_code=503)

    async def garbage(request: Request, exc: Exception) -> Response:
        return HTMLResponse(GARBAGE_PAGE, status_code=200)

    app.add_exception_handler(Refusal, refused)
    app.add_exception_handler(InjectedBusy, busy)
    app.add_exception_handler(InjectedGarbage, garbage)


async def authenticated_json(
    request: Request, credentials: Mapping[str, str], *, expect_body: bool
) -> dict[str, Any]:
    """The request's JSON object (empty when no body is expected).

    Raises `Refusal` 401 `bad_signature` for a missing or wrong signature, 400 for a body that
    is not a JSON object.
    """
    raw = await request.body()
    # Verify against the path exactly as sent (percent-encoded), which is what the client signs.
    path = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
    reason = verify(dict(credentials), dict(request.headers), request.method, path, raw)
    if reason is not None:
        raise Refusal(401, "bad_signature", reason)
    if not expect_body:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refusal(400, "invalid_json", "请求体不是合法的JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_json", "请求体应为JSON对象")
    return body


def text_field(
    body: Mapping[str, Any], name: str, *, required: bool = True, max_chars: int | None = None
) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid(name, "不能为空")
        return None
    if not isinstance(value, str):
        raise invalid(name, "应为字符串")
    if max_chars is not None and len(value) > max_chars:
        raise invalid(name, f"长度{len(value)}超过上限{max_chars}")
    return value


def date_field(body: Mapping[str, Any], name: str) -> str:
    value = text_field(body, name)
    assert value is not None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise invalid(name, "应为 YYYY-MM-DD 格式的日期") from None


def string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, "应为字符串数组")
    return value


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def html_page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(template).render(**context), status_code=status)


def upsert(
    state: SandboxState, table: str, key: str, fields: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Store `fields` under `records[table][key]`, keyed upsert semantics.

    Returns (201, record) when a live copy came into being, (200, record) otherwise; the same
    content_hash on a live record changes nothing.
    """
    with state.lock:
        rows: dict[str, Any] = state.records.setdefault(table, {})
        current = rows.get(key)
        if current and current["status"] == "published":
            if current["content_hash"] == fields["content_hash"]:
                state.count("unchanged")
                return 200, current
            state.count("updates")
            status = 200
        else:
            state.count("creates")
            status = 201
        now = now_text()
        record = {
            **fields,
            "id": key,
            "status": "published",
            "versions": (current["versions"] if current else 0) + 1,
            "created_at": current["created_at"] if current else now,
            "updated_at": now,
            "withdrawn_at": None,
        }
        rows[key] = record
    state.save()
    return status, record


def withdraw(state: SandboxState, table: str, key: str, absent: Refusal) -> None:
    """Mark `records[table][key]` withdrawn. Raises `absent` if it is not live."""
    with state.lock:
        current = state.records.get(table, {}).get(key)
        if not current or current["status"] != "published":
            raise absent
        current["status"] = "withdrawn"
        current["withdrawn_at"] = now_text()
        state.count("deletes")
    state.save()


def live_records(state: SandboxState, table: str) -> list[dict[str, Any]]:
    """Published records, latest publish date first."""
    with state.lock:
        rows = [dict(r) for r in state.records.get(table, {}).values()]
    live = [r for r in rows if r["status"] == "published"]
    return sorted(live, key=lambda r: (r["publish_date"], r["updated_at"]), reverse=True)


# --- the website -------------------------------------------------------------------------------


def article_fields(external_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The stored article. Raises `Refusal` naming the first bad field."""
    if not EXTERNAL_ID.fullmatch(external_id):
        raise Refusal(400, "invalid_id", "external_id: 只能包含字母、数字、点、下划线和连字符")
    title = text_field(body, "title", max_chars=TITLE_MAX_CHARS)
    content_html = body.get("content_html")
    if not isinstance(content_html, str) or not content_html.strip():
        raise invalid("content_html", "不能为空")
    if len(content_html.encode()) > BODY_MAX_BYTES:
        raise invalid("content_html", f"正文超过{BODY_MAX_BYTES}字节上限")
    column = text_field(body, "column")
    if not COLUMN_CODE.fullmatch(column or ""):
        raise invalid("column", "栏目代码只能包含小写字母、数字、下划线和连字符")
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list):
        raise invalid("attachments", "应为数组")
    return {
        "title": title,
        "content_html": content_html,
        "column": column,
        "index_no": text_field(body, "index_no", max_chars=64),
        "publisher": text_field(body, "publisher", max_chars=64),
        "doc_no": text_field(body, "doc_no", required=False, max_chars=64),
        "written_date": date_field(body, "written_date"),
        "publish_date": date_field(body, "publish_date"),
        "keywords": string_list(body, "keywords"),
        "attachments": attachments,
        "content_hash": text_field(body, "content_hash", max_chars=128),
    }


def article_url(base: str, external_id: str) -> str:
    return f"{base}/articles/{quote(external_id, safe='')}.html"


def article_answer(record: Mapping[str, Any], base: str) -> dict[str, Any]:
    return {**record, "url": article_url(base, record["id"])}


def create_app(state: SandboxState, *, credentials: Mapping[str, str] | None = None) -> FastAPI:
    """The website sandbox. `credentials` maps app id → secret (default sandbox/sandbox-secret)."""
    app = signed_upsert_app(
        state,
        credentials,
        title="网站内容管理系统 (sandbox)",
        path="/api/articles/{key}",
        table="articles",
        not_found=Refusal(404, "not_found", "文章不存在或已撤回"),
        fields=article_fields,
        answer=article_answer,
    )
    add_public_pages(app, state)
    return app


def signed_upsert_app(
    state: SandboxState,
    credentials: Mapping[str, str] | None,
    *,
    title: str,
    path: str,
    table: str,
    not_found: Refusal,
    fields: Callable[[str, Mapping[str, Any]], dict[str, Any]],
    answer: Callable[[Mapping[str, Any], str], dict[str, Any]],
    check_key: Callable[[str], None] | None = None,
) -> FastAPI:
    """The signed-upsert API of docs/protocols.md §1 on `path` (its `{key}` is our id): PUT creates
    or updates the record `fields(key, body)` in `table`, GET answers it while published,
    DELETE withdraws it; `check_key` refuses a malformed key. Errors, faults and inspection as
    every sandbox has them."""
    secrets = dict(credentials or {SANDBOX_APP_ID: SANDBOX_SECRET})
    app = FastAPI(title=title, docs_url="/_sandbox/docs")
    app.state.sandbox = state
    app.include_router(inspection_router(state))
    install_api_errors(app)

    @app.put(path)
    async def put_record(key: str, request: Request) -> JSONResponse:
        body = await authenticated_json(request, secrets, expect_body=True)
        await state.before_call(write=True)
        status, record = upsert(state, table, key, fields(key, body))
        await state.after_write()
        return JSONResponse(answer(record, base_url(request)), status_code=status)

    @app.get(path)
    async def get_record(key: str, request: Request) -> JSONResponse:
        await authenticated_json(request, secrets, expect_body=False)
        await state.before_call(write=False)
        if check_key:
            check_key(key)
        with state.lock:
            record = state.records.get(table, {}).get(key)
        if not record or record["status"] != "published":
            raise not_found
        return JSONResponse(answer(record, base_url(request)))

    @app.delete(path)
    async def delete_record(key: str, request: Request) -> Response:
        await authenticated_json(request, secrets, expect_body=False)
        await state.before_call(write=True)
        if check_key:
            check_key(key)
        withdraw(state, table, key, not_found)
        await state.after_write()
        return Response(status_code=204)

    return app


def add_public_pages(app: FastAPI, state: SandboxState) -> None:
    def column_name(code: str) -> str:
        return COLUMN_NAMES.get(code, code)

    def columns() -> list[tuple[str, str]]:
        codes = {r["column"] for r in live_records(state, "articles")}
        return [(code, column_name(code)) for code in sorted(codes)]

    @app.get("/", response_class=HTMLResponse)
    def home() -> HTMLResponse:
        return html_page(
            "website_index.html", articles=live_records(state, "articles")[:50], columns=columns()
        )

    @app.get("/articles/{external_id}.html", response_class=HTMLResponse)
    def article_page(external_id: str) -> HTMLResponse:
        with state.lock:
            record = state.records.get("articles", {}).get(external_id)
        if record and record["status"] == "withdrawn":
            return html_page("website_notice.html", 404, notice="该信息已撤回", columns=columns())
        if not record:
            return html_page("website_notice.html", 404, notice="页面不存在", columns=columns())
        return html_page(
            "website_article.html",
            article=record,
            column_name=column_name(record["column"]),
            columns=columns(),
        )

    @app.get("/columns/{code}/", response_class=HTMLResponse)
    def column_page(code: str) -> HTMLResponse:
        articles = [r for r in live_records(state, "articles") if r["column"] == code]
        return html_page(
            "website_column.html",
            code=code,
            name=column_name(code),
            articles=articles,
            columns=columns(),
        )

    @app.get("/rss.xml")
    def rss(request: Request) -> Response:
        base = base_url(request)
        items = [
            {**r, "url": article_url(base, r["id"]), "pub_date": rfc822(r["publish_date"])}
            for r in live_records(state, "articles")[:50]
        ]
        xml = templates.get_template("website_rss.xml").render(base=base, items=items)
        return Response(xml, media_type="application/rss+xml; charset=utf-8")

    @app.get("/sitemap.xml")
    def sitemap(request: Request) -> Response:
        base = base_url(request)
        urls = [(f"{base}/", None)]
        urls += [(f"{base}/columns/{quote(code)}/", None) for code, _ in columns()]
        urls += [
            (article_url(base, r["id"]), r["updated_at"][:10])
            for r in live_records(state, "articles")
        ]
        xml = templates.get_template("website_sitemap.xml").render(urls=urls)
        return Response(xml, media_type="application/xml; charset=utf-8")


def rfc822(iso_date: str) -> str:
    day = date.fromisoformat(iso_date)
    return format_datetime(datetime(day.year, day.month, day.day, tzinfo=CHINA_TIME))
