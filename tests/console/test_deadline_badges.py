"""The console shows each item's deadline: the due day and the timeliness badge, in the item
list and on the item page (real application, migrated SQLite store, TestClient)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import date

from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.db import Database
from publisher.services.items import create_item
from tests.console.support import signed_in
from tests.support import item_fields


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_list_and_the_item_page_show_the_due_day_and_badge(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    with database.session() as session:
        overdue = create_item(
            session, publisher_env, item_fields(formed_on=date(2024, 9, 27)), actor="editor1"
        ).id
    editor, _ = signed_in(new_browser, database, "editor1")
    listed = editor.get("/console/items")
    assert listed.status_code == 200, listed.text
    assert "公开期限" in listed.text
    assert "2024-10-30 已逾期" in _text(listed.text)
    assert '<span class="badge overdue">已逾期</span>' in listed.text
    page = editor.get(f"/console/items/{overdue}")
    assert page.status_code == 200, page.text
    assert re.search(r"公开期限：\s*2024-10-30 已逾期", _text(page.text))
    assert "仅按周末计算" not in page.text
