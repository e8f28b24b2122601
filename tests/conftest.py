"""Shared fixtures: a migrated temporary database, settings pointing at it, a recording
dispatcher instead of a broker, and the real PostgreSQL / Redis services.

`pg_url` and `redis_url` fail loudly when the service is missing (tests that need them must not
silently pass); set PUBLISHER_TEST_SKIP_SERVICES=1 to skip them instead on a machine without.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher import db
from publisher.config import Settings, get_settings, reset_settings
from publisher.migrate import upgrade

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


def _services_missing(what: str, exc: Exception) -> None:
    message = f"{what} is unreachable ({type(exc).__name__}: {exc})"
    if os.environ.get("PUBLISHER_TEST_SKIP_SERVICES") == "1":
        pytest.skip(message)
    pytest.fail(
        f"{message}. Start it (docker compose up -d postgres redis) or set "
        "PUBLISHER_TEST_SKIP_SERVICES=1 to skip the tests that need it.",
        pytrace=False,
    )


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
    sent: list[tuple[int, str, float]] = []
    db.set_dispatcher(sent.extend)
    yield sent
    db.set_dispatcher(None)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        _services_missing(f"PostgreSQL at {PG_ADMIN_URL}", exc)
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        db.reset_database()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Redis database 15, emptied before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=3)
    try:
        client.flushdb()
    except Exception as exc:
        client.close()
        _services_missing(f"Redis at {REDIS_TEST_URL}", exc)
    try:
        yield REDIS_TEST_URL
    finally:
        client.flushdb()
        client.close()
