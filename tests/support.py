"""Shared test helpers: sandboxes served in a thread, free ports, sample publications."""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import requests
import uvicorn

from channels.base import Publication
from channels.sandbox.common import SandboxState
from channels.sandbox.server import sandbox_app
from publisher.config import Settings
from publisher.db import Database
from publisher.services.deliveries import ChannelPool, DeliveryEngine
from publisher.services.items import ItemFields
from publisher.shared import DatabaseSharedStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningSandbox:
    kind: str
    url: str
    state: SandboxState

    def faults(self, **changes: Any) -> dict[str, Any]:
        resp = requests.post(f"{self.url}/_sandbox/faults", json=changes, timeout=5)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def inspect(self) -> dict[str, Any]:
        resp = requests.get(f"{self.url}/_sandbox/state", timeout=5)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a background thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_sandbox(kind: str) -> Iterator[RunningSandbox]:
    app = sandbox_app(kind)
    state: SandboxState = app.state.sandbox
    with serve_in_thread(app) as url:
        yield RunningSandbox(kind, url, state)


# The settings that give each channel the credentials its sandbox accepts (DESIGN §5.5).
SANDBOX_CREDENTIALS: dict[str, dict[str, str]] = {
    "website": {"website_app_id": "sandbox", "website_secret": "sandbox-secret"},
    "catalogue": {"catalogue_app_id": "sandbox", "catalogue_secret": "sandbox-secret"},
    "wechat": {"wechat_appid": "sandbox", "wechat_secret": "sandbox-secret"},
    "weibo": {"weibo_access_token": "sandbox"},
}


def sandbox_settings(
    var_dir: Any, database_url: str, *sandboxes: RunningSandbox, **overrides: Any
) -> Settings:
    """Settings with each of `sandboxes` as its channel, with the credentials it accepts."""
    values: dict[str, Any] = {"var_dir": var_dir, "database_url": database_url}
    for box in sandboxes:
        values[f"{box.kind}_api_base"] = box.url
        values.update(SANDBOX_CREDENTIALS[box.kind])
    return Settings(**values, **overrides)


def sandbox_engine(settings: Settings) -> DeliveryEngine:
    """A delivery engine on the settings' database, its shared store in that database."""
    db = Database(settings.resolved_database_url())
    return DeliveryEngine(db, settings, ChannelPool(settings, DatabaseSharedStore(db)))


def housing_notice(n: int) -> ItemFields:
    """The item of the Weibo engine tests: for the website and Weibo only."""
    return ItemFields(
        title=f"松山湖第{n}批公共租赁住房配租结果公示",
        summary="本批次配租对象名单及房源分配结果。",
        body_html="<p>公示期为7个工作日。</p>",
        domain="welfare",
        department="jsj",
        formed_on=date(2026, 11, 19),
        channels=["website", "weibo"],
    )


def sample_publication(**overrides: Any) -> Publication:
    pub = Publication(
        item_id=42,
        revision_id=7,
        revision_number=1,
        external_id="item-42",
        title="松山湖2026年城乡困难群众临时救助资金发放情况公示",
        summary="公示本年度第三季度临时救助资金发放对象、金额及审批情况。",
        body_html="<p>根据《广东省临时救助办法》，现将有关情况公示如下。</p>"
        "<p>公示期间如有异议，请致电社管局。</p>",
        domain_code="welfare",
        domain_name="社会救助和社会福利",
        catecode="0902",
        department_code="sgj",
        department_name="社管局",
        org_code="733099896",
        index_no="733099896/2026-00042",
        written_date=date(2026, 11, 2),
        publish_date=date(2026, 11, 20),
        content_hash="0" * 64,
        doc_no="松管社〔2026〕12号",
        keywords=("临时救助", "公示"),
        website_url="http://127.0.0.1:8101/articles/item-42.html",
    )
    return replace(pub, **overrides)


# --- databases ---------------------------------------------------------------------------------

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
# One database per test run, so that two runs on one machine (a session and its CI) never
# wipe each other's tables; dropped when the run ends.
PG_DATABASE = f"publisher_test_{os.getpid()}"
PG_URL = f"{PG_SERVER}/{PG_DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/15"


def require_service(name: str, probe: Any) -> None:
    """Fail loudly when a real service the test needs is missing (skip only when told to)."""
    import os

    import pytest

    try:
        probe()
    except Exception as exc:
        if os.environ.get("PUBLISHER_TEST_SKIP_SERVICES") == "1":
            pytest.skip(f"{name} unavailable and PUBLISHER_TEST_SKIP_SERVICES=1")
        pytest.fail(f"{name} is required by this test and is not reachable: {exc}")


def fresh_postgres() -> str:
    """An empty, migrated database of this test run on the local PostgreSQL; its URL."""
    from sqlalchemy import create_engine, text

    from publisher.migrate import upgrade

    def probe() -> None:
        admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
        admin.dispose()
        if not _cleanup_registered:
            atexit.register(_drop_test_database)
            _cleanup_registered.append(True)

    require_service("PostgreSQL at 127.0.0.1:5432", probe)
    upgrade(PG_URL)
    return PG_URL


_cleanup_registered: list[bool] = []


def _drop_test_database() -> None:
    from sqlalchemy import create_engine, text

    from publisher.db import reset_database

    reset_database()
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
    admin.dispose()


def fresh_redis() -> str:
    import redis

    def probe() -> None:
        redis.Redis.from_url(REDIS_URL).flushdb()

    require_service("Redis at 127.0.0.1:6379", probe)
    return REDIS_URL


def migrated_sqlite(directory: Any) -> str:
    from publisher.migrate import upgrade

    url = f"sqlite:///{directory}/publisher.sqlite"
    upgrade(url)
    return url


@contextmanager
def scratch_shared_store() -> Iterator[Any]:
    """A real `DatabaseSharedStore` on a throw-away SQLite file (the embedded default's)."""
    import tempfile

    from publisher.db import Database
    from publisher.models import SharedValue
    from publisher.shared import DatabaseSharedStore

    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite:///{tmp}/shared.sqlite")
        SharedValue.metadata.create_all(database.engine, tables=[SharedValue.__table__])  # type: ignore[list-item]
        try:
            yield DatabaseSharedStore(database)
        finally:
            database.dispose()


# --- driving the delivery engine by hand ---------------------------------------------------------


def item_delivery(database: Any, item_id: int, kind: str) -> Any:
    """The item's delivery on `kind`, detached from its session."""
    from sqlalchemy import select

    from publisher.models import Delivery

    with database.session() as session:
        d = session.scalars(
            select(Delivery).where(Delivery.item_id == item_id, Delivery.channel_kind == kind)
        ).one()
        session.expunge(d)
        return d


def make_due(database: Any, delivery_id: int) -> None:
    """Skip the wait the engine scheduled: the test plays the clock."""
    from sqlalchemy import update

    from publisher.models import Delivery, utcnow

    with database.session() as session:
        session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(next_attempt_at=utcnow())
        )
