"""Who may call what: every route of `create_app()` against a table of the roles it admits.

For each route in `ACCESS`: without a token, 401; with a token of each role it does not admit,
403; with one of each role it admits (editors and reviewers of the item's department), neither
401 nor 403; and, on routes about one item, editors and reviewers of another department get
403 (or 404). A route of the application missing from the table fails
`test_every_route_is_in_the_table`: a new route cannot escape these checks. Rows for routes
not built yet are skipped, naming what is missing, and are checked as soon as the route lands.

Real application, real services, a migrated SQLite store; nothing is mocked.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.api.app import create_app
from publisher.config import Settings
from publisher.db import Database, get_database, reset_database
from publisher.dispatch import install_sender, sender_installed
from publisher.models import (
    ApiToken,
    Drift,
    DriftKind,
    DriftResolution,
)
from publisher.services.items import create_item
from tests.support import failed_delivery, item_fields, user_with_token

ROLES = ("admin", "editor", "reviewer", "operator", "supervisor")
DEPARTMENT_ROLES = ("editor", "reviewer")
OWN, OTHER = "sgj", "jyj"  # the test item is 社管局's; 教育局 is another department


@dataclass(frozen=True)
class Access:
    """Roles a route admits besides admin; `item` marks a route about one item (or a new
    item's department), where editors and reviewers of another department are refused."""

    roles: frozenset[str]
    item: bool = False
    body: dict[str, Any] | None = field(default=None, hash=False)


def admits(*roles: str, item: bool = False, body: dict[str, Any] | None = None) -> Access:
    return Access(frozenset(roles), item, body)


EVERYONE = ("editor", "reviewer", "operator", "supervisor")
ITEM_READERS = ("editor", "reviewer", "supervisor")
OPERATORS = ("operator",)
ADMINS: tuple[str, ...] = ()

# Answer without a user's token: sign-in, health, the public side (metrics for scrapers at the
# root, with the scrape token: tests/unit/test_public_endpoints.py; uploaded images, WeChat's
# signed callback) and the API's own description and its assets.
PUBLIC = {
    ("POST", "/api/v1/login"),
    ("GET", "/api/v1/healthz"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/media/{sha256}"),
    ("GET", "/wechat/callback"),
    ("POST", "/wechat/callback"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/assets/{name}"),
}

ITEM = {
    "title": "关于2026年冬季供暖补贴发放的公告",
    "body_html": "<p>补贴标准为每户每月200元。</p>",
    "summary": "冬季供暖补贴发放",
    "domain": "welfare",
    "department": OWN,
    "formed_on": "2026-11-20",
}

ACCESS: dict[tuple[str, str], Access] = {
    # items
    ("POST", "/api/v1/items"): admits("editor", item=True, body=ITEM),
    ("GET", "/api/v1/items"): admits(*ITEM_READERS),
    ("GET", "/api/v1/items/{item_id}"): admits(*ITEM_READERS, item=True),
    ("PATCH", "/api/v1/items/{item_id}"): admits("editor", item=True, body={"title": "改"}),
    # Reviewers publish urgent items of the disaster domain after one stage (urgent path).
    ("POST", "/api/v1/items/{item_id}/publish"): admits("editor", "reviewer", item=True),
    ("POST", "/api/v1/items/{item_id}/retract"): admits("editor", item=True),
    ("GET", "/api/v1/items/{item_id}/preview"): admits(*ITEM_READERS, item=True),
    ("GET", "/api/v1/items/{item_id}/attempts"): admits(*EVERYONE, item=True),
    ("POST", "/api/v1/media"): admits("editor"),
    # review (DESIGN §6.1)
    ("POST", "/api/v1/items/{item_id}/submit"): admits("editor", item=True),
    ("POST", "/api/v1/items/{item_id}/approve"): admits("reviewer", item=True),
    ("POST", "/api/v1/items/{item_id}/send-back"): admits(
        "reviewer", item=True, body={"comment": "请补充发放标准"}
    ),
    # pre-publish checks
    ("POST", "/api/v1/items/{item_id}/override-findings"): admits(
        "reviewer", item=True, body={"reason": "已核实，公示需要"}
    ),
    ("POST", "/api/v1/items/{item_id}/mask"): admits("editor", item=True),
    ("GET", "/api/v1/sensitive-words"): admits("reviewer", "supervisor"),
    ("POST", "/api/v1/sensitive-words"): admits(*ADMINS, body={"words": ["测试词"]}),
    ("DELETE", "/api/v1/sensitive-words/{word}"): admits(*ADMINS),
    # deliveries
    ("GET", "/api/v1/deliveries"): admits(*EVERYONE),
    ("GET", "/api/v1/deliveries/{delivery_id}"): admits(*EVERYONE, item=True),
    ("POST", "/api/v1/deliveries/{delivery_id}/retry"): admits(*OPERATORS),
    ("POST", "/api/v1/deliveries/{delivery_id}/cancel"): admits(*OPERATORS),
    ("POST", "/api/v1/deliveries/{delivery_id}/adopt"): admits(
        *OPERATORS, body={"remote_id": "post-1"}
    ),
    ("POST", "/api/v1/deliveries/{delivery_id}/mark-posted"): admits(
        *OPERATORS, body={"reason": "seen on the channel"}
    ),
    # channels and the freeze
    ("GET", "/api/v1/channels"): admits(*EVERYONE),
    ("POST", "/api/v1/channels/{kind}/pause"): admits(*OPERATORS),
    ("POST", "/api/v1/channels/{kind}/resume"): admits(*OPERATORS),
    ("PUT", "/api/v1/channels/{kind}/credentials"): admits(*OPERATORS),
    ("POST", "/api/v1/channels/{kind}/retry-failed"): admits(*OPERATORS),
    ("GET", "/api/v1/wechat/digests"): admits(*EVERYONE),
    ("GET", "/api/v1/freeze"): admits(*EVERYONE),
    ("POST", "/api/v1/freeze"): admits(*OPERATORS, body={"reason": "全国哀悼日"}),
    ("DELETE", "/api/v1/freeze"): admits(*OPERATORS),
    # the disclosure scope
    ("GET", "/api/v1/domains"): admits(*EVERYONE),
    ("POST", "/api/v1/domains"): admits(*ADMINS),
    ("PATCH", "/api/v1/domains/{code}"): admits(*ADMINS, body={}),
    ("GET", "/api/v1/departments"): admits(*EVERYONE),
    ("POST", "/api/v1/departments"): admits(*ADMINS),
    # drift
    ("GET", "/api/v1/drift"): admits(*EVERYONE),
    ("POST", "/api/v1/drift/check"): admits(*OPERATORS, body={"channel": "website"}),
    ("POST", "/api/v1/drift/{drift_id}/repair"): admits(*OPERATORS),
    # people, tokens, the audit trail
    ("GET", "/api/v1/users"): admits(*ADMINS),
    ("POST", "/api/v1/users"): admits(*ADMINS),
    ("GET", "/api/v1/tokens"): admits(*EVERYONE),
    ("DELETE", "/api/v1/tokens/{token_id}"): admits(*EVERYONE),  # one's own (the caller's)
    ("GET", "/api/v1/audit"): admits("supervisor"),
    # the working-day calendar
    ("GET", "/api/v1/calendar/overrides"): admits("supervisor"),
    ("POST", "/api/v1/calendar/overrides"): admits(
        *ADMINS, body={"day": "2027-10-01", "is_workday": False}
    ),
    # system
    ("GET", "/api/v1/metrics"): admits("operator", "supervisor"),
}


def _routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route the application serves (HEAD aside)."""
    try:  # FastAPI ≥ 0.16x keeps included routers unflattened
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = list(app.routes)
    found = set()
    for route in routes:
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and path:
                found.add((method, path))
    return found


def _application_routes() -> set[tuple[str, str]]:
    """The route table of `create_app()` with every optional part on (the WeChat callback),
    read at collection: building the app installs its Celery sender, which is put back."""
    had_sender = sender_installed()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            var_dir=Path(tmp),
            database_url=f"sqlite:///{tmp}/routes.sqlite",
            wechat_callback_token="route-table",
        )
        routes = _routes_of(create_app(settings))
        reset_database()
    if not had_sender:
        install_sender(None)
    return routes


ROUTES = _application_routes()


# The console's pages (a session cookie, not a token): tests/console/test_console_access.py.
CONSOLE = {r for r in ROUTES if r[1] == "/" or r[1].startswith(("/console", "/login", "/logout"))}


def test_every_route_is_in_the_table() -> None:
    missing = sorted(ROUTES - set(ACCESS) - PUBLIC - CONSOLE)
    assert not missing, (
        "routes without a row in tests/unit/test_route_access.py ACCESS (say which roles "
        f"may call them): {missing}"
    )


def test_the_public_routes_answer_without_a_token(world: World) -> None:
    assert world.client.get("/api/v1/healthz").status_code in (200, 503)
    assert (
        world.client.post("/api/v1/login", json={"name": "x", "password": "y"}).status_code == 401
    )


# --- the world each route is called in ----------------------------------------------------------


@dataclass
class World:
    client: TestClient
    database: Database
    ids: dict[str, Any]

    def token(self, role: str, department: str | None = None) -> tuple[dict[str, str], int]:
        """Headers with a new token of a new user of `role` (editors and reviewers of
        `department`, default the item's), and the token's id."""
        departments = (department or OWN,) if role in DEPARTMENT_ROLES else ()
        plaintext = user_with_token(self.database, role, *departments)
        with self.database.session() as session:
            from sqlalchemy import select

            from publisher.auth import hash_token

            token_id = session.scalars(
                select(ApiToken.id).where(ApiToken.token_hash == hash_token(plaintext))
            ).one()
        return {"Authorization": f"Bearer {plaintext}"}, int(token_id)

    def call(
        self, method: str, path: str, access: Access, headers: dict[str, str], token_id: int
    ) -> Any:
        url = path.format(**{**self.ids, "token_id": token_id})
        return self.client.request(method, url, json=access.body, headers=headers)


@pytest.fixture
def world(publisher_env: Settings, dispatched: list[Any]) -> Iterator[World]:
    """A 社管局 item with a (failed) website delivery and an open drift; no channel set up,
    so nothing reaches out of the process."""
    database = get_database(publisher_env)
    with database.session() as session:
        item = create_item(session, publisher_env, item_fields(department=OWN), actor="test")
        delivery = failed_delivery(session, item.id)
        drift = Drift(
            delivery_id=delivery.id,
            item_id=item.id,
            channel_kind="website",
            kind=DriftKind.MISSING,
            resolution=DriftResolution.REPORTED,
        )
        session.add(drift)
        session.flush()
        ids = {
            "item_id": item.id,
            "delivery_id": delivery.id,
            "drift_id": drift.id,
            "kind": "website",
            "code": "welfare",
            "word": "测试词",
        }
    with TestClient(create_app(publisher_env)) as client:
        yield World(client, database, ids)


def _refused(status: int) -> bool:
    return status in (401, 403)


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS), ids=lambda v: str(v))
def test_route_access(world: World, method: str, path: str) -> None:
    if (method, path) not in ROUTES:
        pytest.skip(f"{method} {path} is not built yet: its row waits for it")
    access = ACCESS[(method, path)]
    anonymous = world.call(method, path, access, {}, 0)
    assert anonymous.status_code == 401, (method, path, "no token", anonymous.text)

    for role in ROLES:
        headers, token_id = world.token(role)
        resp = world.call(method, path, access, headers, token_id)
        if role == "admin" or role in access.roles:
            assert not _refused(resp.status_code), (method, path, role, resp.text)
        else:
            assert resp.status_code == 403, (method, path, role, resp.status_code, resp.text)

    if access.item:
        for role in set(DEPARTMENT_ROLES) & access.roles:
            headers, token_id = world.token(role, OTHER)
            resp = world.call(method, path, access, headers, token_id)
            assert resp.status_code in (403, 404), (method, path, f"{role} of {OTHER}", resp.text)
