"""Shared test helpers: sandboxes served in a thread, free ports, sample publications."""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import requests
import uvicorn

from channels.base import Publication
from channels.sandbox.common import SandboxState
from channels.sandbox.server import sandbox_app
from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.publication import ChannelPool
from publisher.dispatch import set_dispatcher
from publisher.sealing import Sealer, decode_key
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
def serve_in_thread(app: Any, port: int | None = None, log_level: str = "warning") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a background thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="off")
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


# The settings that give each channel the credentials its sandbox accepts (docs/protocols.md).
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


def user_with_token(
    database: Database,
    role: str,
    *departments: str,
    name: str | None = None,
    token: str | None = None,
) -> str:
    """A user of `role` (bound to `departments`) and a token of theirs, `token` if given;
    returns the token. Tests that need a token known in advance (a module constant) pass one."""
    from publisher.auth import TOKEN_PREFIX, hash_token
    from publisher.models import ApiToken, Department, Role, User

    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    with database.session() as session:
        user = User(name=name or f"{role}-{secrets.token_hex(4)}", role=Role(role))
        user.departments = [session.get(Department, code) for code in departments]  # type: ignore[misc]
        session.add(user)
        session.flush()
        session.add(
            ApiToken(token_hash=hash_token(token), prefix=token[:10], user_id=user.id, label="test")
        )
    return token


# The key the tests' own shared stores seal tokens with (a fixed one: processes a test starts
# must open what it sealed). Never a deployment's: it is in this file for everyone to read.
TEST_SECRET_KEY = "cHVibGlzaGVyIHRlc3RzOiBub3QgYSBzZWNyZXQhISE="


def sealer_for_tests() -> Sealer:
    """A sealer with `TEST_SECRET_KEY`, for the stores tests build themselves."""
    return Sealer(decode_key(TEST_SECRET_KEY))


def sandbox_engine(settings: Settings) -> DeliveryEngine:
    """A delivery engine on the settings' database, its shared store in that database."""
    db = Database(settings.resolved_database_url())
    shared = DatabaseSharedStore(db, sealer=sealer_for_tests())
    return DeliveryEngine(db, settings, ChannelPool(settings, shared))


def item_fields(**overrides: Any) -> ItemFields:
    """A valid new item (社管局, social welfare; every required field set), with `overrides`
    replacing its fields."""
    fields = ItemFields(
        title="关于2026年冬季供暖补贴发放的公告",
        body_html="<p>补贴标准为每户每月200元。</p>",
        summary="冬季供暖补贴发放",
        domain="welfare",
        department="sgj",
        formed_on=date(2026, 11, 20),
        keywords=["补贴"],
    )
    return replace(fields, **overrides)


def item_json(**overrides: Any) -> dict[str, Any]:
    """The API's form of a valid new item (formed three days ago), with `overrides`
    replacing its fields; an override of None leaves the field out."""
    body: dict[str, Any] = {
        "title": "关于2026年冬季供暖补贴发放的公告",
        "body_html": "<p>补贴标准为每户每月200元。</p>",
        "summary": "冬季供暖补贴发放",
        "domain": "welfare",
        "department": "sgj",
        "doc_number": "松管社〔2026〕1号",
        "formed_on": (date.today() - timedelta(days=3)).isoformat(),
        "keywords": ["补贴", "供暖"],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def housing_notice(n: int) -> ItemFields:
    """The item of the Weibo engine and reconciliation tests: for the website and Weibo only."""
    return item_fields(
        title=f"松山湖第{n}批公共租赁住房配租结果公示",
        summary="本批次配租对象名单及房源分配结果。",
        body_html="<p>公示期为7个工作日。</p>",
        department="jsj",
        formed_on=date(2026, 11, 19),
        keywords=None,
        channels=["website", "weibo"],
    )


# (delivery id, channel kind, countdown): what a commit hands to the workers.
Dispatched = list[tuple[int, str, float]]


@contextmanager
def dispatching_to(receive: Callable[[Dispatched], object]) -> Iterator[None]:
    """What each commit hands to the workers goes to `receive` instead of the broker (the
    `dispatched` fixture records it); the default is back afterwards."""

    def dispatch(pairs: Dispatched) -> None:
        receive(pairs)

    set_dispatcher(dispatch)
    try:
        yield
    finally:
        set_dispatcher(None)


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
# Every key a test run writes in Redis (shared store and broker) starts with this prefix, and
# the run deletes exactly those keys when it ends: two runs on one machine (a session and its
# CI) share db 15 and never see or delete each other's keys. Never FLUSHDB it.
REDIS_RUN_PREFIX = f"pytest-{os.getpid()}-{secrets.token_hex(4)}:"


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


@dataclass(frozen=True)
class RedisSpace:
    """A key space of its own in a Redis database: every key in it starts with `prefix`."""

    url: str
    prefix: str

    def env(self) -> dict[str, str]:
        """The settings that put a process's shared store and broker in this space."""
        return {
            "PUBLISHER_BROKER_URL": self.url,
            "PUBLISHER_REDIS_URL": self.url,
            "PUBLISHER_REDIS_KEY_PREFIX": self.prefix,
            # A store on Redis stores tokens only sealed with a configured key.
            "PUBLISHER_SECRET_KEY": TEST_SECRET_KEY,
        }

    def keys(self) -> list[str]:
        return redis_keys(self.url, self.prefix)

    def delete_keys(self) -> int:
        return delete_redis_keys(self.url, self.prefix)


_redis_spaces = itertools.count(1)


def fresh_redis() -> RedisSpace:
    """A new, empty key space of this test run in the local Redis (each call its own, under
    `REDIS_RUN_PREFIX`); the run deletes its keys when it ends."""
    import redis

    def probe() -> None:
        redis.Redis.from_url(REDIS_URL).ping()
        if not _redis_cleanup_registered:
            atexit.register(delete_redis_keys, REDIS_URL, REDIS_RUN_PREFIX)
            _redis_cleanup_registered.append(True)

    require_service("Redis at 127.0.0.1:6379", probe)
    return RedisSpace(REDIS_URL, f"{REDIS_RUN_PREFIX}{next(_redis_spaces)}:")


_redis_cleanup_registered: list[bool] = []


def redis_keys(url: str, prefix: str) -> list[str]:
    """Every key in `url`'s database that starts with `prefix` (SCAN, not KEYS)."""
    import redis

    with redis.Redis.from_url(url, decode_responses=True) as client:
        return sorted(client.scan_iter(match=_glob_escape(prefix) + "*", count=1000))


def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete exactly the keys that start with `prefix`; how many there were."""
    import redis

    deleted = 0
    with redis.Redis.from_url(url) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) == 500:
                deleted += int(client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
    return deleted


def _glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


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
            yield DatabaseSharedStore(database, sealer=sealer_for_tests())
        finally:
            database.dispose()


# --- review --------------------------------------------------------------------------------------


def reviewer(session: Any, department: str, number: int) -> Any:
    """The `number`th reviewer of `department` (a real user, made on first use), as a
    `Principal`."""
    return department_user(session, f"reviewer{number}-{department}", "reviewer", department)


def department_user(session: Any, name: str, role: str, department: str) -> Any:
    """The user `name` with `role` in `department` (made on first use), as a `Principal`."""
    from publisher.auth import Principal
    from publisher.services.users import create_user, find_user

    user = find_user(session, name) or create_user(
        session, name=name, role=role, departments=[department], actor="tests"
    )
    departments = tuple(d.code for d in user.departments)
    return Principal(user.role, departments, user.name, user.id, name=user.name)


def approve_all(session: Any, item_id: int) -> None:
    """Take the item through review as it stands: submitted (unless it is under review
    already), then every stage of its domain approved, each by another real reviewer of its
    department. Tests that are not about review publish what this approved."""
    from publisher.models import Item
    from publisher.services import review

    item = session.get(Item, item_id)
    state = review.review_state(session, item)
    if not state.submitted:
        editor = department_user(
            session, f"editor-{item.department_code}", "editor", item.department_code
        )
        review.submit_item(session, item_id, editor)
        state = review.review_state(session, item)
    while state.next_stage is not None:
        review.approve_item(
            session, item_id, reviewer(session, item.department_code, state.next_stage.number)
        )
        state = review.review_state(session, item)


def publish_reviewed(
    session: Any, settings: Settings, item_id: int, *, enabled_kinds: list[str]
) -> Any:
    """`approve_all`, then publish: how tests that are not about review publish an item, or
    an edit of a published one (held until approved)."""
    from publisher.services.items import publish_item

    approve_all(session, item_id)
    return publish_item(session, settings, item_id, actor="t", enabled_kinds=enabled_kinds)


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


def enable_signed_channels(monkeypatch: Any) -> None:
    """Website and catalogue enabled at an address nothing listens on (tests that record the
    dispatcher send nothing); WeChat and Weibo left unconfigured, hence disabled."""
    for kind in ("WEBSITE", "CATALOGUE"):
        monkeypatch.setenv(f"PUBLISHER_{kind}_API_BASE", "http://127.0.0.1:9")
        monkeypatch.setenv(f"PUBLISHER_{kind}_APP_ID", "sandbox")
        monkeypatch.setenv(f"PUBLISHER_{kind}_SECRET", "sandbox-secret")


def enable_every_channel_offline(monkeypatch: Any) -> None:
    """All four channels enabled, at an address nothing listens on: previews are built
    locally and deliveries are recorded (`dispatched`), never sent."""
    enable_signed_channels(monkeypatch)
    for name, value in {
        "WECHAT_APPID": "sandbox",
        "WECHAT_SECRET": "sandbox-secret",
        "WECHAT_API_BASE": "http://127.0.0.1:9",
        "WEIBO_ACCESS_TOKEN": "sandbox",
        "WEIBO_API_BASE": "http://127.0.0.1:9",
        "WEIBO_RIP": "211.156.0.1",
    }.items():
        monkeypatch.setenv(f"PUBLISHER_{name}", value)


# Three sentences: 27, 66 and 136 characters in — the third ends past WeChat's digest limit (128).
LONG_SUMMARY = (
    "今冬供暖补贴按月发放，每户每月二百元，由社区统一造册。"
    "低保家庭、特困人员和困难残疾人家庭可以申领，须在每月十日前向所在社区提出申请。"
    "社区工作人员核实后于次月五日前发放到户，发放名单在社区公示栏公示七天，"
    "群众对名单有异议的可以向社管局反映，社管局将在五个工作日内核实并答复。"
)


def wechat_on_sandbox(
    monkeypatch: Any, sandbox_url: str, callback_token: str, aes_key: str | None = None
) -> Any:
    """Settings with `enable_signed_channels` and WeChat on the sandbox at `sandbox_url`, its
    callbacks signed with `callback_token` (safe mode when `aes_key` is given)."""
    from publisher.config import get_settings, reset_settings

    enable_signed_channels(monkeypatch)
    values = {
        "API_BASE": sandbox_url,
        "APPID": "sandbox",
        "SECRET": "sandbox-secret",
        "CALLBACK_TOKEN": callback_token,
    }
    if aes_key is not None:
        values["AES_KEY"] = aes_key
    for name, value in values.items():
        monkeypatch.setenv(f"PUBLISHER_WECHAT_{name}", value)
    reset_settings()
    return get_settings()


def failed_delivery(session: Any, item_id: int, kind: str = "website") -> Any:
    """A failed delivery of the item's only revision on `kind`, flushed (it has its id)."""
    from sqlalchemy import select

    from publisher.models import Delivery, DeliveryState, Revision

    revision = session.scalars(select(Revision).where(Revision.item_id == item_id)).one()
    delivery = Delivery(
        item_id=item_id,
        channel_kind=kind,
        desired_revision_id=revision.id,
        state=DeliveryState.FAILED,
    )
    session.add(delivery)
    session.flush()
    return delivery
