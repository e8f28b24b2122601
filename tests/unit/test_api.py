"""The REST API through FastAPI's TestClient: real app, real services, migrated SQLite.

A recording dispatcher stands in for the broker, so what was enqueued is visible.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from tests.support import approve_all, enable_signed_channels, item_json, user_with_token

ADMIN_TOKEN = "pub_admin-token-of-the-api-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TODAY_YEAR = date.today().year


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Website and catalogue enabled (any http URL will do: nothing is sent in these tests);
    WeChat and Weibo left unconfigured, hence disabled (Weibo's public IP given: the real API
    needs one once a token is)."""
    enable_signed_channels(monkeypatch)
    monkeypatch.setenv("PUBLISHER_WEIBO_RIP", "211.156.0.1")
    reset_settings()
    user_with_token(get_database(), "admin", name="admin", token=ADMIN_TOKEN)
    return get_settings()


def db_path(settings: Settings) -> Path:
    return Path(settings.resolved_database_url().removeprefix("sqlite:///"))


def count(settings: Settings, table: str) -> int:
    with sqlite3.connect(db_path(settings)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def token(client: TestClient, role: str, department: str | None = None) -> dict[str, str]:
    from publisher.auth import create_token

    with get_database().session() as session:
        plaintext = create_token(session, role, department, label="test")
    return {"Authorization": f"Bearer {plaintext}"}


def create(client: TestClient, headers: dict[str, str] = ADMIN, **overrides: Any) -> Any:
    resp = client.post("/api/v1/items", json=item_json(**overrides), headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def approve(view: dict[str, Any]) -> None:
    """Take the item through review: every stage approved by real reviewers."""
    with get_database().session() as session:
        approve_all(session, view["id"])


def problems(resp: Any) -> set[tuple[str, str]]:
    assert resp.status_code == 422, resp.text
    return {(d["loc"][-1], d["type"]) for d in resp.json()["detail"]}


# --- creating items ---------------------------------------------------------------------------


def test_create_item_returns_the_view(client: TestClient, settings: Settings) -> None:
    view = create(client)
    assert view["status"] == "draft"
    assert view["domain"] == "welfare" and view["department"] == "sgj"
    assert view["revision"]["number"] == 1
    assert view["revision"]["title"] == "关于2026年冬季供暖补贴发放的公告"
    assert view["revision"]["keywords"] == ["补贴", "供暖"]
    assert view["deliveries"] == []
    again = client.get(f"/api/v1/items/{view['id']}", headers=ADMIN).json()
    assert again["revision"]["content_hash"] == view["revision"]["content_hash"]
    assert count(settings, "items") == 1 and count(settings, "revisions") == 1


def test_markdown_body_becomes_html(client: TestClient) -> None:
    view = create(client, body_html=None, body_markdown="# 标题\n\n**重要**通知")
    assert "<strong>重要</strong>" in view["revision"]["body_html"]


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"title": None}, "title", "missing"),
        ({"title": "   "}, "title", "required"),
        ({"domain": "astrology"}, "domain", "known"),
        ({"department": "nosuch"}, "department", "known"),
        ({"domain": "education", "department": "sgj"}, "department", "responsible"),
        ({"formed_on": (date.today() + timedelta(days=2)).isoformat()}, "formed_on", "not_future"),
        ({"body_html": "<p>" + "长" * 400_000 + "</p>"}, "body_html", "max_bytes"),
        ({"formed_on": "not a date"}, "formed_on", "date_from_datetime_parsing"),
        ({"channels": ["fax"]}, "channels", "known"),
    ],
)
def test_bad_input_is_422_naming_field_and_rule_and_stores_nothing(
    client: TestClient, settings: Settings, overrides: dict[str, Any], field: str, rule: str
) -> None:
    body = item_json(**overrides)
    if overrides.get("title", "x") is None:
        body.pop("title", None)
    resp = client.post("/api/v1/items", json=body, headers=ADMIN)
    found = problems(resp)
    assert any(f == field and r.startswith(rule.split("_from")[0]) for f, r in found), found
    assert count(settings, "items") == 0
    assert count(settings, "revisions") == 0
    assert count(settings, "audit_events") == 0


def test_malformed_json_is_422(client: TestClient, settings: Settings) -> None:
    resp = client.post(
        "/api/v1/items",
        content=b'{"title": "x",',
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["type"] == "json_invalid"
    assert count(settings, "items") == 0


def test_html_is_sanitised(client: TestClient) -> None:
    dirty = (
        '<p onclick="steal()">正文<script>alert(1)</script></p>'
        '<img src="https://example.org/a.png" onerror="alert(2)">'
        '<a href="javascript:alert(3)">链接</a>'
    )
    html = create(client, body_html=dirty)["revision"]["body_html"]
    assert "正文" in html and "链接" in html
    for bad in ("<script", "alert(1)", "onerror", "onclick", "javascript:"):
        assert bad not in html


def test_patch_makes_a_new_revision(client: TestClient) -> None:
    view = create(client)
    resp = client.patch(
        f"/api/v1/items/{view['id']}", json={"title": "更正：冬季供暖补贴"}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["revision"]["number"] == 2
    assert body["revision"]["title"] == "更正：冬季供暖补贴"
    assert body["revision"]["body_html"] == view["revision"]["body_html"]
    assert [r["number"] for r in body["revisions"]] == [1, 2]


# --- auth ---------------------------------------------------------------------------------------


def test_no_token_is_401_with_www_authenticate(client: TestClient) -> None:
    resp = client.get("/api/v1/items")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    resp = client.get("/api/v1/items", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401


def test_wrong_role_is_403_naming_the_role(client: TestClient, settings: Settings) -> None:
    supervisor = token(client, "supervisor")
    resp = client.post("/api/v1/items", json=item_json(), headers=supervisor)
    assert resp.status_code == 403
    assert "editor" in resp.json()["detail"]
    assert count(settings, "items") == 0
    assert client.get("/api/v1/items", headers=supervisor).status_code == 200
    operator = token(client, "operator")
    assert client.post("/api/v1/domains", json={}, headers=operator).status_code == 403


def test_editor_is_limited_to_their_department(client: TestClient, settings: Settings) -> None:
    editor = token(client, "editor", "jyj")
    resp = client.post("/api/v1/items", json=item_json(), headers=editor)  # sgj's item
    assert resp.status_code == 403
    assert count(settings, "items") == 0
    own = create(client, editor, domain="education", department="jyj")
    assert own["created_by"].startswith("editor-")  # the token's user, made on the fly
    others = create(client)  # sgj, by the admin
    for path in ("", "/publish", "/retract"):
        method = client.patch if not path else client.post
        kwargs: dict[str, Any] = {"json": {"title": "改"}} if not path else {}
        resp = method(f"/api/v1/items/{others['id']}{path}", headers=editor, **kwargs)
        assert resp.status_code == 403, (path, resp.text)


def test_token_is_stored_hashed(client: TestClient, settings: Settings) -> None:
    headers = token(client, "editor", "sgj")
    plaintext = headers["Authorization"].split()[1]
    assert client.get("/api/v1/items", headers=headers).status_code == 200
    get_database().dispose()  # fold the WAL into the file before reading its bytes
    stored = db_path(settings).read_bytes()
    wal = db_path(settings).with_name(db_path(settings).name + "-wal")
    if wal.exists():
        stored += wal.read_bytes()
    assert plaintext.encode() not in stored
    assert plaintext[4:].encode() not in stored


def token_id(headers: dict[str, str]) -> int:
    from sqlalchemy import select

    from publisher.auth import hash_token
    from publisher.models import ApiToken

    plaintext = headers["Authorization"].split()[1]
    with get_database().session() as session:
        found = session.scalars(
            select(ApiToken.id).where(ApiToken.token_hash == hash_token(plaintext))
        ).one()
    return int(found)


def test_revoked_token_is_refused(client: TestClient) -> None:
    from publisher.auth import revoke_token

    headers = token(client, "operator")
    assert client.get("/api/v1/deliveries", headers=headers).status_code == 200
    with get_database().session() as session:
        revoke_token(session, token_id(headers))
    assert client.get("/api/v1/deliveries", headers=headers).status_code == 401


def test_a_token_revoked_by_another_process_is_refused_within_the_cache_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publisher import auth
    from publisher.models import ApiToken, utcnow

    clock = [1000.0]
    monkeypatch.setattr(auth, "_now", lambda: clock[0])
    headers = token(client, "operator")
    assert client.get("/api/v1/deliveries", headers=headers).status_code == 200
    with get_database().session() as session:  # as another process revokes: no cache told
        found = session.get(ApiToken, token_id(headers))
        assert found is not None
        found.revoked_at = utcnow()
    assert client.get("/api/v1/deliveries", headers=headers).status_code == 200
    clock[0] += auth.TOKEN_CACHE_SECONDS
    assert client.get("/api/v1/deliveries", headers=headers).status_code == 401


# --- publishing -----------------------------------------------------------------------------


def test_publish_reads_the_item_in_three_queries(client: TestClient) -> None:
    from sqlalchemy import event

    editor = token(client, "editor", "sgj")
    view = create(client, editor)  # the token is known from here on
    approve(view)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = get_database().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        resp = client.post(f"/api/v1/items/{view['id']}/publish", headers=editor)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert resp.status_code == 202, resp.text
    reads = [re.findall(r"\bFROM\s+(\w+)", s)[0] for s in statements if s.startswith("SELECT")]
    # The item (its domain and department joined), its revisions, its deliveries, its
    # approvals, the sensitive words (the pre-publish check) and the audit chain's tail: no
    # token lookup, no list of the domain's departments, no second look at anything.
    assert reads == [
        "items",
        "revisions",
        "deliveries",
        "approvals",
        "sensitive_words",
        "audit_events",
    ]


def test_publish_assigns_index_numbers_and_enqueues_deliveries(
    client: TestClient, dispatched: list[tuple[int, str, float]]
) -> None:
    first, second = create(client), create(client, title="第二条公告")
    approve(first)
    approve(second)
    resp = client.post(f"/api/v1/items/{first['id']}/publish", headers=ADMIN)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "published"
    assert body["index_no"] == f"733099896/{TODAY_YEAR}-00001"
    assert sorted(d["channel"] for d in body["deliveries"]) == ["catalogue", "website"]
    assert all(d["state"] == "pending" and d["attempts"] == 0 for d in body["deliveries"])
    # The website goes first; the catalogue waits to be woken by its page going live.
    assert [kind for _, kind, _ in dispatched] == ["website"]
    catalogue = next(d for d in body["deliveries"] if d["channel"] == "catalogue")
    assert catalogue["wait_reason"] == "website"

    resp = client.post(f"/api/v1/items/{second['id']}/publish", headers=ADMIN)
    assert resp.json()["index_no"] == f"733099896/{TODAY_YEAR}-00002"

    listed = client.get("/api/v1/deliveries?channel=website", headers=ADMIN).json()
    assert listed["total"] == 2
    assert {d["channel"] for d in listed["results"]} == {"website"}


def test_preflight_problem_is_422_naming_the_channel(
    client: TestClient, settings: Settings, dispatched: list[Any]
) -> None:
    # 300 kB as written; escaping each ">" as "&gt;" makes 1.2 MB: over the website's 1 MB.
    view = create(client, body_html="<p>" + ">" * 300_000 + "</p>")
    resp = client.post(f"/api/v1/items/{view['id']}/publish", headers=ADMIN)
    assert resp.status_code == 422, resp.text[:500]
    detail = resp.json()["detail"]
    assert detail == [
        {
            "loc": ["body", "body_html"],
            "msg": "website: 正文不能超过1MB",
            "type": "max_bytes",
            "msg_zh": "网站：正文不能超过1MB",
            "channel": "website",
        }
    ]
    assert count(settings, "deliveries") == 0 and dispatched == []
    assert client.get(f"/api/v1/items/{view['id']}", headers=ADMIN).json()["index_no"] is None
    preview = client.get(f"/api/v1/items/{view['id']}/preview", headers=ADMIN).json()
    website = next(c for c in preview["channels"] if c["channel"] == "website")
    assert website["problems"] == [
        {
            "field": "body_html",
            "rule": "max_bytes",
            "message": "正文不能超过1MB",
            "message_zh": "正文不能超过1MB",
        }
    ]
    catalogue = next(c for c in preview["channels"] if c["channel"] == "catalogue")
    assert catalogue["problems"] == [] and catalogue["publication"]["website_url"]


def test_retract(client: TestClient, dispatched: list[Any]) -> None:
    view = create(client)
    approve(view)
    client.post(f"/api/v1/items/{view['id']}/publish", headers=ADMIN)
    dispatched.clear()
    resp = client.post(f"/api/v1/items/{view['id']}/retract", headers=ADMIN)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "retracted"
    assert len(dispatched) == 2
    again = client.post(f"/api/v1/items/{view['id']}/retract", headers=ADMIN)
    assert again.status_code == 409


def test_operator_cancels_and_retries_a_delivery(client: TestClient) -> None:
    view = create(client)
    approve(view)
    published = client.post(f"/api/v1/items/{view['id']}/publish", headers=ADMIN).json()
    delivery_id = published["deliveries"][0]["id"]
    operator = token(client, "operator")
    editor = token(client, "editor", "sgj")
    assert (
        client.post(f"/api/v1/deliveries/{delivery_id}/cancel", headers=editor).status_code == 403
    )
    resp = client.post(f"/api/v1/deliveries/{delivery_id}/cancel", headers=operator)
    assert resp.status_code == 200 and resp.json()["state"] == "cancelled"
    resp = client.post(f"/api/v1/deliveries/{delivery_id}/retry", headers=operator)
    assert resp.status_code == 202 and resp.json()["state"] == "pending"
    detail = client.get(f"/api/v1/deliveries/{delivery_id}", headers=operator).json()
    assert detail["attempt_log"] == []
    assert client.get("/api/v1/deliveries/9999", headers=operator).status_code == 404


# --- channels -------------------------------------------------------------------------------


def test_channels_status_pause_resume_and_credentials(
    client: TestClient, settings: Settings
) -> None:
    listed = {
        c["kind"]: c for c in client.get("/api/v1/channels", headers=ADMIN).json()["channels"]
    }
    assert listed["website"]["enabled"] and listed["catalogue"]["enabled"]
    assert not listed["weibo"]["enabled"]
    assert "PUBLISHER_WEIBO_ACCESS_TOKEN" in listed["weibo"]["disabled_reason"]

    operator = token(client, "operator")
    resp = client.post("/api/v1/channels/website/pause", json={"reason": "维护"}, headers=operator)
    assert resp.status_code == 200 and resp.json()["paused"]
    listed = {
        c["kind"]: c for c in client.get("/api/v1/channels", headers=ADMIN).json()["channels"]
    }
    assert listed["website"]["paused"] and listed["website"]["paused_reason"] == "维护"
    assert (
        client.post("/api/v1/channels/website/resume", headers=operator).json()["paused"] is False
    )
    assert client.post("/api/v1/channels/fax/pause", headers=operator).status_code == 404

    secret = "weibo-token-that-must-not-leak"
    resp = client.put(
        "/api/v1/channels/weibo/credentials", json={"access_token": secret}, headers=operator
    )
    assert resp.status_code == 200, resp.text
    assert secret not in resp.text
    listed = {
        c["kind"]: c for c in client.get("/api/v1/channels", headers=ADMIN).json()["channels"]
    }
    assert listed["weibo"]["enabled"], listed["weibo"]
    with sqlite3.connect(db_path(settings)) as conn:
        audits = " ".join(str(r) for r in conn.execute("SELECT * FROM audit_events"))
    assert "channel.credentials" in audits and secret not in audits


# --- domains and departments ------------------------------------------------------------------


def test_domains_and_departments_added_at_run_time_are_usable_at_once(
    client: TestClient, settings: Settings
) -> None:
    resp = client.post("/api/v1/departments", json={"code": "mzj", "name": "民政局"}, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    resp = client.post(
        "/api/v1/domains",
        json={"code": "elderly", "name": "养老服务", "catecode": "0908", "departments": ["mzj"]},
        headers=ADMIN,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["departments"] == ["mzj"]
    view = create(client, domain="elderly", department="mzj")
    assert view["domain"] == "elderly"
    resp = client.patch(
        "/api/v1/domains/elderly", json={"departments": ["mzj", "sgj"]}, headers=ADMIN
    )
    assert resp.json()["departments"] == ["mzj", "sgj"]
    create(client, domain="elderly", department="sgj")
    codes = [d["code"] for d in client.get("/api/v1/domains", headers=ADMIN).json()["domains"]]
    assert "elderly" in codes and "welfare" in codes
    bad = client.post(
        "/api/v1/domains",
        json={"code": "x", "name": "X", "catecode": "09", "departments": ["nosuch"]},
        headers=ADMIN,
    )
    assert ("departments", "known") in problems(bad)
    editor = token(client, "editor", "sgj")
    denied = client.post("/api/v1/departments", json={"code": "a", "name": "A"}, headers=editor)
    assert denied.status_code == 403
    with sqlite3.connect(db_path(settings)) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_events")]
    assert "domain.add" in actions and "department.add" in actions


# --- media, health, metrics -----------------------------------------------------------------


def test_media_upload_and_public_download(client: TestClient) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    resp = client.post(
        "/api/v1/media", files={"file": ("a.png", buffer.getvalue(), "image/png")}, headers=ADMIN
    )
    assert resp.status_code == 201, resp.text
    url = resp.json()["url"]
    got = client.get(url)
    assert got.status_code == 200 and got.content == buffer.getvalue()
    assert got.headers["content-type"] == "image/png"
    view = create(client, cover_image=url)
    assert view["revision"]["cover_image"] == url
    bad = client.post(
        "/api/v1/media", files={"file": ("a.png", b"not an image", "image/png")}, headers=ADMIN
    )
    assert ("file", "image") in problems(bad)


def test_a_pixel_bomb_upload_is_refused_from_its_header(client: TestClient) -> None:
    from tests.outbound import png_bomb

    bomb = png_bomb(20_000, 20_000)  # 400 MB decoded, some 400 KB uploaded

    resp = client.post("/api/v1/media", files={"file": ("a.png", bomb, "image/png")}, headers=ADMIN)

    assert resp.status_code == 422, resp.text
    assert ("file", "max_pixels") in problems(resp)
    assert "图片像素过多" in resp.text


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ok"
    assert resp.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert client.get("/api/v1/healthz").status_code == 200


def test_healthz_503_when_broker_unreachable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_BROKER_URL", "redis://127.0.0.1:9/0")
    reset_settings()
    with TestClient(create_app(get_settings())) as client:
        resp = client.get("/healthz")
    assert resp.status_code == 503
    assert resp.json()["checks"]["database"] == "ok"
    assert resp.json()["checks"]["broker"].startswith("error")


def test_metrics_parse_and_name_every_metric(client: TestClient) -> None:
    view = create(client)
    approve(view)
    client.post(f"/api/v1/items/{view['id']}/publish", headers=ADMIN)
    resp = client.get("/api/v1/metrics", headers=ADMIN)
    assert resp.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    assert {
        "publisher_deliveries",
        "publisher_attempts",
        "publisher_attempt_duration_seconds",
        "publisher_queue_lag_seconds",
    } <= set(families)
    pending = [
        s.value
        for s in families["publisher_deliveries"].samples
        if s.labels == {"state": "pending", "channel": "website"}
    ]
    assert pending == [1.0]


def test_openapi_lists_the_stable_paths(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/items",
        "/api/v1/items/{item_id}",
        "/api/v1/items/{item_id}/publish",
        "/api/v1/items/{item_id}/retract",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{delivery_id}/retry",
        "/api/v1/channels",
        "/api/v1/healthz",
        "/api/v1/metrics",
    ):
        assert path in paths


def test_a_title_too_long_for_wechat_is_refused_at_publish_naming_channel_and_field(
    client: TestClient, settings: Settings, dispatched: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_WECHAT_APPID", "sandbox")
    monkeypatch.setenv("PUBLISHER_WECHAT_SECRET", "sandbox-secret")
    reset_settings()
    with TestClient(create_app(get_settings())) as wechat_client:
        view = create(wechat_client, title="关" * 40)
        resp = wechat_client.post(f"/api/v1/items/{view['id']}/publish", headers=ADMIN)
        assert resp.status_code == 422, resp.text
        problems = resp.json()["detail"]
        assert [(p["channel"], p["loc"][-1]) for p in problems] == [("wechat", "title")]
        assert count(settings, "deliveries") == 0 and dispatched == []
        short = wechat_client.patch(
            f"/api/v1/items/{view['id']}", json={"short_title": "供暖补贴发放公告"}, headers=ADMIN
        )
        assert short.status_code == 200, short.text
        approve(view)
        resp = wechat_client.post(f"/api/v1/items/{view['id']}/publish", headers=ADMIN)
        assert resp.status_code == 202, resp.text
        assert "wechat" in {d["channel"] for d in resp.json()["deliveries"]}
        revisions = count(settings, "revisions")
        too_long = wechat_client.patch(
            f"/api/v1/items/{view['id']}", json={"short_title": "长" * 33}, headers=ADMIN
        )
        assert too_long.status_code == 422, too_long.text
        assert [(p["channel"], p["loc"][-1]) for p in too_long.json()["detail"]] == [
            ("wechat", "title")
        ]
        assert count(settings, "revisions") == revisions  # the refused edit is not stored


def test_freeze_start_status_lift_and_roles(client: TestClient, dispatched: list[Any]) -> None:
    operator = token(client, "operator")
    editor = token(client, "editor", "sgj")
    assert client.get("/api/v1/freeze", headers=editor).json() == {"active": False}
    assert client.post("/api/v1/freeze", json={"reason": "x"}, headers=editor).status_code == 403
    empty = client.post("/api/v1/freeze", json={"reason": ""}, headers=operator)
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "reason"]
    started = client.post("/api/v1/freeze", json={"reason": "全国哀悼日"}, headers=operator)
    assert started.status_code == 201 and started.json()["active"] is True
    again = client.post("/api/v1/freeze", json={"reason": "again"}, headers=operator)
    assert again.status_code == 409
    assert client.get("/api/v1/freeze", headers=editor).json()["reason"] == "全国哀悼日"
    lifted = client.delete("/api/v1/freeze", headers=operator)
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    assert client.delete("/api/v1/freeze", headers=operator).status_code == 409


def test_retry_every_failed_delivery_of_a_channel(
    client: TestClient, settings: Settings, dispatched: list[Any]
) -> None:
    from sqlalchemy import update

    from publisher.models import Delivery, DeliveryState

    for n in range(3):
        view = create(client, title=f"第{n}条")
        approve(view)
        client.post(f"/api/v1/items/{view['id']}/publish", headers=ADMIN)
    with get_database().session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.channel_kind == "website")
            .values(state=DeliveryState.FAILED)
        )
    dispatched.clear()
    operator = token(client, "operator")
    resp = client.post("/api/v1/channels/website/retry-failed", headers=operator)
    assert resp.status_code == 200 and resp.json() == {"kind": "website", "retried": 3}
    assert [kind for _, kind, _ in dispatched] == ["website"] * 3
    listed = client.get("/api/v1/deliveries?channel=website&state=failed", headers=operator)
    assert listed.json()["total"] == 0


def test_bad_filters_are_422_not_500(client: TestClient) -> None:
    for path in (
        "/api/v1/deliveries?state=bogus",
        "/api/v1/deliveries?channel=fax",
        "/api/v1/items?status=bogus",
    ):
        resp = client.get(path, headers=ADMIN)
        assert resp.status_code == 422, (path, resp.text)
        assert resp.json()["detail"][0]["loc"][0] == "query"


def test_an_editor_token_needs_a_department(client: TestClient) -> None:
    from publisher.auth import create_token
    from publisher.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused, get_database().session() as session:
        create_token(session, "editor")
    assert [(p.field, p.rule) for p in refused.value.problems] == [("department", "required")]


def test_the_served_app_freezes_what_it_loaded_once_started(settings: Settings) -> None:
    import gc

    from publisher.api.app import serve_app

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = serve_app()
    assert gc.get_freeze_count() == 0  # not on import or build: on start, in each process
    try:
        with TestClient(app) as started:
            assert started.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
