"""Console fixtures: the real application on a migrated SQLite store with one user of each
role (tests/console/support.py `USERS`), and a client that does not follow redirects."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from publisher.api.app import create_app
from publisher.config import Settings
from publisher.db import Database, get_database
from publisher.services.users import create_user
from tests.console.support import USERS


@pytest.fixture
def database(publisher_env: Settings, dispatched: list[object]) -> Database:
    database = get_database(publisher_env)
    with database.session() as session:
        for name, (role, departments) in USERS.items():
            create_user(
                session,
                name=name,
                role=role,
                departments=list(departments),
                password=None,  # signed in by `session_for`; the form's tests set one
                actor="test",
            )
    return database


@pytest.fixture
def new_browser(publisher_env: Settings, database: Database) -> Callable[[], TestClient]:
    """A new cookie jar on the same application (one per user signed in)."""
    app = create_app(publisher_env)
    return lambda: TestClient(app, follow_redirects=False)


@pytest.fixture
def browser(new_browser: Callable[[], TestClient]) -> TestClient:
    return new_browser()
