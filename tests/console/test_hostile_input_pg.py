"""Text PostgreSQL cannot store (NUL) in a console form or filter: a 422 page in Chinese
naming the field, never a 500 from the driver — for anyone, signed in or not.

Real application on a fresh migrated database of the local PostgreSQL (SQLite stores NUL, so
only PostgreSQL shows this), driven by TestClient with server errors answered, not raised.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import Database, reset_database
from publisher.services.items import create_item
from tests.console.support import login_csrf, session_for
from tests.console.test_hostile_input import assert_console_page
from tests.support import fresh_postgres, item_fields


@pytest.fixture
def publisher_env(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PUBLISHER_DATABASE_URL", fresh_postgres())
    reset_settings()
    reset_database()
    return get_settings()


@pytest.fixture
def new_browser(publisher_env: Settings, database: Database) -> Callable[[], TestClient]:
    app = create_app(publisher_env)
    return lambda: TestClient(app, follow_redirects=False, raise_server_exceptions=False)


def test_nul_in_a_filter_or_a_form_is_refused_beside_its_name(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    anonymous = new_browser()
    signing_in = anonymous.post(
        "/login",
        data={"username": "editor1\x00", "password": "x", "csrf_token": login_csrf(anonymous)},
    )
    assert_console_page(signing_in, 422, "U+0000")

    editor = new_browser()
    session_for(editor, database, "editor1")
    for query in ("q=%00", "department=sgj%00"):
        assert_console_page(editor.get(f"/console/items?{query}"), 422, "U+0000")

    with database.session() as session:
        item_id = create_item(session, publisher_env, item_fields(), actor="editor1").id
    reviewer = new_browser()
    csrf = session_for(reviewer, database, "reviewer1")
    sent_back = reviewer.post(
        f"/console/items/{item_id}/send-back", data={"csrf_token": csrf, "comment": "改\x00"}
    )
    assert_console_page(sent_back, 422, "U+0000")

    operator = new_browser()
    csrf = session_for(operator, database, "operator1")
    paused = operator.post(
        "/console/channels/website/pause", data={"csrf_token": csrf, "reason": "a\x00"}
    )
    assert_console_page(paused, 422, "U+0000")
    assert_console_page(operator.get("/console/deliveries?department=%00"), 422, "U+0000")

    supervisor = new_browser()
    session_for(supervisor, database, "supervisor1")
    assert_console_page(supervisor.get("/console/audit?actor=%00"), 422, "U+0000")
