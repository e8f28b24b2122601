"""A local Dongguan open-government catalogue speaking the protocol of docs/protocols.md §3.

API (HMAC-signed, same scheme as the website):
    PUT    /api/catalogue/{index_no}   upsert: 201 created / 200 updated or unchanged
    GET    /api/catalogue/{index_no}   200 the live entry / 404
    DELETE /api/catalogue/{index_no}   204 revoked (撤销) / 404 absent or already revoked
`index_no` is `{org_code}/{year}-{serial:05d}`, its slash part of the path. Answers are
`{id, url, status, content_hash, versions, entry}`: `url` is the public entry page, `entry`
the stored fields (whose `url` is the 原文链接). Errors are JSON `{"code", "message"}`.

Public pages as on zwgk.dg.gov.cn:
    /{org_code}/zwgkList.shtml?catecode=0900   the section (every catecode "09xx")
    /{org_code}/zwgkList.shtml?catecode=0902   one category
    /{org_code}/content/{index_no}.html        one entry: the Art. 12 metadata + 原文链接
Revoked entries disappear from both.

State: `records["entries"][index_no]` with `status` "published" | "withdrawn" and `versions`;
counters `creates`, `updates`, `unchanged`, `deletes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from channels.sandbox.common import SandboxState
from channels.sandbox.website import (
    Refusal,
    date_field,
    html_page,
    invalid,
    live_records,
    signed_upsert_app,
    string_list,
    text_field,
)

INDEX_NO = re.compile(r"(?P<org>[0-9A-Za-z]{1,32})/(?P<year>\d{4})-(?P<serial>\d{5})")
CATECODE = re.compile(r"\d{4}")
TITLE_MAX_CHARS = 200
SUMMARY_MAX_CHARS = 2000
# Category names of the social public-welfare section (our assumption, docs/protocols.md §3).
CATEGORY_NAMES = {
    "0900": "社会公益事业",
    "0901": "脱贫攻坚",
    "0902": "社会救助和社会福利",
    "0903": "教育",
    "0904": "基本医疗卫生",
    "0905": "环境保护",
    "0906": "灾害事故救援",
    "0907": "公共文化体育",
}


def check_index_no(index_no: str) -> None:
    if not INDEX_NO.fullmatch(index_no):
        raise Refusal(
            400,
            "invalid_index_no",
            f"index_no: 索引号“{index_no}”格式错误，应为 机构代码/年份-五位序号",
            "index_no",
        )


def entry_fields(index_no: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The stored entry. Raises `Refusal` naming the first bad field."""
    check_index_no(index_no)
    if body.get("index_no") != index_no:
        raise invalid("index_no", "请求体中的索引号与路径不一致")
    title = text_field(body, "title", max_chars=TITLE_MAX_CHARS)
    catecode = text_field(body, "catecode")
    if not CATECODE.fullmatch(catecode or ""):
        raise invalid("catecode", "分类代码应为四位数字")
    url = text_field(body, "url", max_chars=1000)
    if not (url or "").startswith(("http://", "https://")):
        raise invalid("url", "原文链接应为 http(s) 地址")
    return {
        "index_no": index_no,
        "title": title,
        "summary": text_field(body, "summary", required=False, max_chars=SUMMARY_MAX_CHARS) or "",
        "catecode": catecode,
        "publisher": text_field(body, "publisher", max_chars=64),
        "written_date": date_field(body, "written_date"),
        "publish_date": date_field(body, "publish_date"),
        "doc_no": text_field(body, "doc_no", required=False, max_chars=64),
        "keywords": string_list(body, "keywords"),
        "validity": text_field(body, "validity", max_chars=16),
        "url": url,
        "content_hash": text_field(body, "content_hash", max_chars=128),
    }


def entry_url(base: str, index_no: str) -> str:
    org = index_no.partition("/")[0]
    return f"{base}/{org}/content/{index_no}.html"


def entry_answer(record: Mapping[str, Any], base: str) -> dict[str, Any]:
    return {
        "id": record["id"],
        "url": entry_url(base, record["id"]),
        "status": record["status"],
        "content_hash": record["content_hash"],
        "versions": record["versions"],
        "entry": dict(record),
    }


def in_category(catecode: str, wanted: str | None) -> bool:
    """A section code ("0900") lists its whole section; any other code lists just itself."""
    if not wanted:
        return True
    if wanted.endswith("00"):
        return catecode.startswith(wanted[:2])
    return catecode == wanted


def create_app(state: SandboxState, *, credentials: Mapping[str, str] | None = None) -> FastAPI:
    """The catalogue sandbox. `credentials`: app id → secret (default sandbox/sandbox-secret)."""
    app = signed_upsert_app(
        state,
        credentials,
        title="政府信息公开目录 (sandbox)",
        path="/api/catalogue/{key:path}",
        table="entries",
        not_found=Refusal(404, "not_found", "目录条目不存在或已撤销"),
        fields=entry_fields,
        answer=entry_answer,
        check_key=check_index_no,
    )
    add_public_pages(app, state)
    return app


def add_public_pages(app: FastAPI, state: SandboxState) -> None:
    def organisations() -> list[str]:
        return sorted({r["id"].partition("/")[0] for r in live_records(state, "entries")})

    @app.get("/", response_class=HTMLResponse)
    def home() -> HTMLResponse:
        return html_page("catalogue_home.html", orgs=organisations())

    @app.get("/{org_code}/zwgkList.shtml", response_class=HTMLResponse)
    def listing(org_code: str, catecode: str | None = None) -> HTMLResponse:
        entries = [
            r
            for r in live_records(state, "entries")
            if r["id"].partition("/")[0] == org_code and in_category(r["catecode"], catecode)
        ]
        return html_page(
            "catalogue_list.html",
            org_code=org_code,
            catecode=catecode,
            category=CATEGORY_NAMES.get(catecode or "", catecode or "全部"),
            categories=CATEGORY_NAMES,
            entries=entries,
        )

    @app.get("/{org_code}/content/{index_no:path}.html", response_class=HTMLResponse)
    def entry_page(org_code: str, index_no: str) -> HTMLResponse:
        # Accept both ".../content/733099896/2026-00012.html" and ".../content/2026-00012.html".
        if "/" not in index_no:
            index_no = f"{org_code}/{index_no}"
        with state.lock:
            record = state.records.get("entries", {}).get(index_no)
        if not record or record["status"] != "published" or not index_no.startswith(org_code):
            notice = "该信息已撤销" if record else "页面不存在"
            return html_page("catalogue_notice.html", 404, notice=notice, org_code=org_code)
        return html_page(
            "catalogue_entry.html",
            entry=record,
            category=CATEGORY_NAMES.get(record["catecode"], record["catecode"]),
        )
