"""Shared fixtures: a migrated temporary database, settings pointing at it, and a recording
dispatcher instead of a broker. The real PostgreSQL and Redis come from `tests.support`
(`fresh_postgres`, `fresh_redis`), which fail loudly when a service is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from publisher import db
from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.migrate import upgrade


@pytest.fixture(scope="session", autouse=True)
def isolated_var_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads the developer's ./var (its database, tokens or channels.env)."""
    saved = os.environ.get("PUBLISHER_VAR_DIR")
    os.environ["PUBLISHER_VAR_DIR"] = str(tmp_path_factory.mktemp("var"))
    reset_settings()
    yield
    if saved is None:
        os.environ.pop("PUBLISHER_VAR_DIR", None)
    else:
        os.environ["PUBLISHER_VAR_DIR"] = saved
    reset_settings()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per session; tests get copies of it."""
    path = tmp_path_factory.mktemp("template") / "publisher.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def publisher_env(
    tmp_path: Path, migrated_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings on a fresh migrated SQLite database under `tmp_path`, read from a clean
    `PUBLISHER_*` environment (extend it with monkeypatch.setenv + reset_settings())."""
    for name in list(os.environ):
        if name.startswith("PUBLISHER_") and name != "PUBLISHER_TEST_SKIP_SERVICES":
            monkeypatch.delenv(name)
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    database = var_dir / "publisher.sqlite"
    shutil.copy(migrated_template, database)
    monkeypatch.setenv("PUBLISHER_VAR_DIR", str(var_dir))
    monkeypatch.setenv("PUBLISHER_DATABASE_URL", f"sqlite:///{database}")
    reset_settings()
    db.reset_database()
    yield get_settings()
    db.reset_database()
    reset_settings()


@pytest.fixture
def dispatched() -> Iterator[list[tuple[int, str, float]]]:
    """Every (delivery id, channel kind, countdown) sent to the workers after a commit."""
    # Not at collection: tests.support imports the whole application, and the layout check
    # (tests/test_layout.py) must run even while some module of it does not import.
    from tests.support import dispatching_to

    sent: list[tuple[int, str, float]] = []
    with dispatching_to(sent.extend):
        yield sent


@pytest.fixture
def client(settings: Settings, dispatched: list[tuple[int, str, float]]) -> Iterator[TestClient]:
    """The API on the test module's `settings`, deliveries recorded instead of sent."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
