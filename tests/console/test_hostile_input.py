"""Hostile input on the console's pages: ids that are not numbers, fields past their limits,
bodies too large, characters no store can hold. Each is refused with a page in Chinese that
says what was wrong (never the API's JSON, never the input echoed back, never a 500).

Real application on a migrated SQLite store (tests/console/conftest.py), driven by TestClient;
the PostgreSQL-only cases (NUL) on a fresh database of the local PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import Database
from publisher.models import DeliveryState
from publisher.services.items import create_item
from tests.console.support import login_csrf, session_for
from tests.support import failed_delivery, item_fields


def assert_console_page(answer: Response, status: int, *texts: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    for text in texts:
        assert text in answer.text, answer.text[-1500:]


def test_a_malformed_id_or_query_gets_a_chinese_page_not_json(
    browser: TestClient, database: Database
) -> None:
    csrf = session_for(browser, database, "editor1")
    assert_console_page(browser.get("/console/items/abc"), 422, "信息编号须为整数")
    assert_console_page(browser.get("/console/items?page=abc"), 422, "page须为整数")
    assert_console_page(
        browser.post("/console/items/abc/submit", data={"csrf_token": csrf}), 422, "信息编号"
    )


def test_an_over_long_field_is_refused_in_chinese_without_echoing_it(
    browser: TestClient, database: Database
) -> None:
    secret = "s3cret-" * 40  # past the login form's 200 characters
    answer = browser.post(
        "/login",
        data={"username": "editor1", "password": secret, "csrf_token": login_csrf(browser)},
    )
    assert_console_page(answer, 422, "200")
    assert secret not in answer.text
    csrf = session_for(browser, database, "editor1")
    changed = browser.post(
        "/console/password",
        data={"csrf_token": csrf, "current": secret, "new": "x", "again": "x"},
    )
    assert_console_page(changed, 422)
    assert secret not in changed.text


def test_a_refused_action_says_why_in_chinese(
    publisher_env: Settings, browser: TestClient, database: Database
) -> None:
    """A `Conflict` carries its Chinese text (`zh`): the console shows that, not the English."""
    with database.session() as session:
        item_id = create_item(session, publisher_env, item_fields(), actor="editor1").id
    csrf = session_for(browser, database, "reviewer1")
    answer = browser.post(f"/console/items/{item_id}/approve", data={"csrf_token": csrf})
    assert_console_page(answer, 409, f"信息 {item_id} 未送审")
    assert "is not submitted" not in answer.text


def test_a_body_past_the_caps_gets_a_chinese_page(
    publisher_env: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the request cap (413, answered before the app reads it) or past the form parser's
    1 MB a field (400): a console page in Chinese; the API keeps its JSON."""
    monkeypatch.setenv("PUBLISHER_MAX_REQUEST_BYTES", "2000000")
    reset_settings()
    browser = TestClient(create_app(get_settings()), follow_redirects=False)
    csrf = session_for(browser, database, "editor1")
    huge = browser.post("/console/items/new", data={"csrf_token": csrf, "body": "x" * 2_100_000})
    assert_console_page(huge, 413, "2 MB")
    assert "request body larger" not in huge.text
    field = browser.post("/console/items/new", data={"csrf_token": csrf, "body": "x" * 1_100_000})
    assert_console_page(field, 400, "1 MB")
    assert "exceeded" not in field.text
    api = browser.post("/api/v1/items", content=b"x" * 2_100_000)
    assert api.status_code == 413 and "2000000 bytes" in api.json()["detail"]


def test_a_post_address_is_a_link_only_when_it_is_a_web_address(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    """A delivery's URL comes from the channel's answer or an operator's "mark posted": a
    `javascript:` one is shown as text, never as a link staff may click."""
    with database.session() as session:
        item_id = create_item(session, publisher_env, item_fields(), actor="editor1").id
        hostile = failed_delivery(session, item_id, "website")
        hostile.state, hostile.remote_url = DeliveryState.LIVE, "javascript:alert(document.domain)"
        honest = failed_delivery(session, item_id, "catalogue")
        honest.state, honest.remote_url = DeliveryState.LIVE, "https://example.gov.cn/post/1"
        delivery_id = hostile.id
    editor = new_browser()
    session_for(editor, database, "editor1")
    operator = new_browser()
    session_for(operator, database, "operator1")
    for page in (
        editor.get(f"/console/items/{item_id}"),
        operator.get(f"/console/deliveries/{delivery_id}"),
    ):
        assert page.status_code == 200
        assert 'href="javascript:' not in page.text
    assert 'href="https://example.gov.cn/post/1"' in editor.get(f"/console/items/{item_id}").text
