"""The console's session: sign in with a password, the cookie's flags, CSRF on every form,
sign out (the token revoked), the password form, error pages in Chinese, the login redirect.

Real application on a migrated SQLite store (`publisher_env`), driven over HTTP by TestClient;
the browser flows are in tests/browser.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from publisher.db import Database
from publisher.models import ApiToken, AuditEvent
from publisher.services.users import set_password, verify_password
from tests.console.support import PASSWORD, login_csrf, page_csrf, sign_in


@pytest.fixture(autouse=True)
def editor_password(database: Database) -> None:
    """editor1 signs in with a password here."""
    with database.session() as session:
        set_password(session, "editor1", PASSWORD, actor="test")


def test_a_page_without_a_session_sends_to_the_login_form_and_back(browser: TestClient) -> None:
    answer = browser.get("/console/password")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fconsole%2Fpassword"
    htmx = browser.get("/console/password", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].startswith("/login?next=")

    csrf = login_csrf(browser, "/login?next=%2Fconsole%2Fpassword")
    signed = browser.post(
        "/login",
        data={
            "username": "editor1",
            "password": PASSWORD,
            "csrf_token": csrf,
            "next": "/console/password",
        },
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/console/password"
    assert browser.get("/console/password").status_code == 200


def test_the_session_cookie_is_http_only_and_same_site_lax_and_holds_a_revocable_token(
    browser: TestClient, database: Database
) -> None:
    csrf = login_csrf(browser)
    answer = browser.post(
        "/login", data={"username": "editor1", "password": PASSWORD, "csrf_token": csrf}
    )
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "publisher_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is set
    with database.session() as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login")).first()

    home = browser.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/console/items"

    page = browser.get("/console/password")
    bye = browser.post("/logout", data={"csrf_token": page_csrf(page.text)})
    assert bye.status_code == 303 and bye.headers["location"] == "/login"
    with database.session() as session:
        rows = list(session.scalars(select(ApiToken).where(ApiToken.label == "login")))
        assert rows and all(row.revoked_at is not None for row in rows)
    assert browser.get("/console/password").status_code == 303  # signed out


def test_the_login_form_refuses_a_wrong_password_a_missing_field_and_a_forged_post(
    browser: TestClient,
) -> None:
    csrf = login_csrf(browser)
    wrong = browser.post(
        "/login", data={"username": "editor1", "password": "no", "csrf_token": csrf}
    )
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    assert "publisher_session" not in wrong.headers.get("set-cookie", "")
    empty = browser.post("/login", data={"username": "editor1", "csrf_token": login_csrf(browser)})
    assert empty.status_code == 422 and "请填写用户名和密码" in empty.text
    browser.cookies.clear()
    forged = browser.post(
        "/login", data={"username": "editor1", "password": PASSWORD, "csrf_token": "x"}
    )
    assert forged.status_code == 403 and "登录页面已过期" in forged.text


def test_after_signing_in_only_paths_of_ours_are_followed(browser: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        csrf = login_csrf(browser)
        answer = browser.post(
            "/login",
            data={"username": "editor1", "password": PASSWORD, "csrf_token": csrf, "next": target},
        )
        assert answer.headers["location"] == "/"


def test_a_form_without_the_sessions_csrf_token_is_refused_and_audited(
    browser: TestClient, database: Database
) -> None:
    sign_in(browser, "editor1")
    forged = browser.post("/logout", data={"csrf_token": "not-the-token"})
    assert forged.status_code == 403 and "表单已失效" in forged.text
    assert browser.post("/logout").status_code == 403
    with database.session() as session:
        refused = session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.refused"))
        assert any("CSRF" in str(row.details) for row in refused)
    token = page_csrf(browser.get("/console/password").text)
    assert browser.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303


def test_a_user_changes_their_own_password(browser: TestClient, database: Database) -> None:
    sign_in(browser, "editor1")
    csrf = page_csrf(browser.get("/console/password").text)
    new = "a much longer new passphrase"
    mismatch = browser.post(
        "/console/password",
        data={"csrf_token": csrf, "current": PASSWORD, "new": new, "again": new + "x"},
    )
    assert mismatch.status_code == 422 and "两次输入的新密码不一致" in mismatch.text
    wrong = browser.post(
        "/console/password",
        data={"csrf_token": csrf, "current": "nope", "new": new, "again": new},
    )
    assert wrong.status_code == 422 and "当前密码不正确" in wrong.text
    done = browser.post(
        "/console/password",
        data={"csrf_token": csrf, "current": PASSWORD, "new": new, "again": new},
    )
    assert done.status_code == 200 and "密码已修改" in done.text
    with database.session() as session:
        assert verify_password(session, "editor1", new) is not None
        assert verify_password(session, "editor1", PASSWORD) is None


def test_console_errors_are_pages_in_chinese_and_the_api_keeps_json(browser: TestClient) -> None:
    sign_in(browser, "editor1")
    missing = browser.get("/console/no-such-page")
    assert missing.status_code == 404 and "页面不存在" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    api = browser.get("/api/v1/no-such-route")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


def test_the_shipped_htmx_and_styles_are_served_from_our_origin(browser: TestClient) -> None:
    page = browser.get("/login").text
    for asset in ("/console/static/htmx.min.js", "/console/static/console.js"):
        assert f'src="{asset}"' in page
        served = browser.get(asset)
        assert served.status_code == 200 and "javascript" in served.headers["content-type"]
    assert browser.get("/console/static/console.css").status_code == 200
    assert "<script>" not in page  # the CSP allows no inline script
