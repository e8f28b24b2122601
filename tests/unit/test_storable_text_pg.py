"""NUL (U+0000) in the API's input on PostgreSQL, which cannot store it: a 422 naming the
query parameter or the body's field and the rule, before any service runs — never the
driver's 500, and nothing stored. Text that only shows the escape (`\\u0000`) is fine.

Real application on a fresh migrated PostgreSQL database (SQLite would store NUL)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database, reset_database
from publisher.models import Item
from tests.support import fresh_postgres, item_json, user_with_token


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PUBLISHER_DATABASE_URL", fresh_postgres())
    reset_settings()
    reset_database()
    return get_settings()


def refused(answer: Any, field: str) -> None:
    assert answer.status_code == 422, answer.text
    entry = next(e for e in answer.json()["detail"] if e["loc"][-1] == field)
    assert entry["type"] == "characters" and "U+0000" in entry["msg"]
    assert "U+0000" in entry["msg_zh"]


def test_nul_in_a_query_or_a_json_body_is_refused_naming_it(
    settings: Settings, dispatched: list[Any]
) -> None:
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {user_with_token(get_database(settings), 'admin')}"}
    for path, name in (
        ("/api/v1/items?department=%00", "query.department"),
        ("/api/v1/items?domain=a%00", "query.domain"),
        ("/api/v1/audit?actor=%00", "query.actor"),
        ("/api/v1/drift?channel=x%00", "query.channel"),
    ):
        refused(client.get(path, headers=headers), name)
    for field, value, where in (
        ("summary", "摘要\x00", "summary"),
        ("keywords", ["补贴", "a\x00"], "keywords[1]"),
    ):
        refused(
            client.post("/api/v1/items", json=item_json(**{field: value}), headers=headers), where
        )
    refused(client.post("/api/v1/login", json={"name": "a\x00", "password": "x"}), "name")
    with get_database(settings).session() as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 0

    shown = client.post(
        "/api/v1/items", json=item_json(summary="转义写作 \\u0000 不是空字符"), headers=headers
    )
    assert shown.status_code == 201, shown.text
