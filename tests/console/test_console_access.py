"""Who may open which console page: every console route against a table of the roles it
admits, as `tests/unit/test_route_access.py` does for the API.

For each route in `CONSOLE_ACCESS`: without a session, a redirect to `/login` (never the page);
a POST without the session's CSRF token, 403; signed in with each role it does not admit, the
403 page; with each role it admits, neither. On pages about one item, an editor of another
department gets the 403 page. A console route missing from the table fails
`test_every_console_route_is_in_the_table`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from publisher.config import Settings
from publisher.db import Database
from publisher.models import Drift, DriftKind, DriftResolution
from publisher.services.items import create_item
from tests.console.support import BY_ROLE, session_for
from tests.support import failed_delivery, item_fields
from tests.unit.test_route_access import CONSOLE

ROLES = ("admin", "editor", "reviewer", "operator", "supervisor")
EVERYONE = ("editor", "reviewer", "operator", "supervisor")


@dataclass(frozen=True)
class Page:
    """Roles admitted besides admin; `item`: about one 社管局 item (another department's
    editor is refused); `form`: what a POST sends besides the CSRF token."""

    roles: frozenset[str]
    item: bool = False
    form: tuple[tuple[str, str], ...] = ()


def admits(*roles: str, item: bool = False, form: dict[str, str] | None = None) -> Page:
    return Page(frozenset(roles), item, tuple((form or {}).items()))


# Answer without a session.
PUBLIC = {("GET", "/login"), ("POST", "/login")}

CONSOLE_ACCESS: dict[tuple[str, str], Page] = {
    ("GET", "/"): admits(*EVERYONE),
    ("POST", "/logout"): admits(*EVERYONE),
    ("GET", "/console/password"): admits(*EVERYONE),
    ("POST", "/console/password"): admits(*EVERYONE),
    ("GET", "/console/supervision"): admits("supervisor"),
    ("GET", "/console/audit"): admits("supervisor"),
    ("POST", "/console/audit/verify"): admits("supervisor"),
    # the staff's pages (publisher/console/items.py, compose.py)
    ("GET", "/console/items"): admits("editor", "reviewer", "supervisor"),
    ("GET", "/console/items/new"): admits("editor"),
    ("POST", "/console/items/new"): admits("editor", form={"title": "标题"}),
    ("POST", "/console/items/preview"): admits("editor", form={"title": "标题"}),
    ("GET", "/console/items/{item_id}"): admits("editor", "reviewer", "supervisor", item=True),
    ("GET", "/console/items/{item_id}/deliveries"): admits(
        "editor", "reviewer", "supervisor", item=True
    ),
    ("GET", "/console/items/{item_id}/edit"): admits("editor", item=True),
    ("POST", "/console/items/{item_id}/edit"): admits("editor", item=True, form={"title": ""}),
    ("POST", "/console/items/{item_id}/preview"): admits("editor", item=True),
    ("POST", "/console/items/{item_id}/submit"): admits("editor", item=True),
    ("POST", "/console/items/{item_id}/approve"): admits("reviewer", item=True),
    ("POST", "/console/items/{item_id}/send-back"): admits(
        "reviewer", item=True, form={"comment": "请修改"}
    ),
    ("POST", "/console/items/{item_id}/publish"): admits("editor", "reviewer", item=True),
    ("POST", "/console/items/{item_id}/retract"): admits("editor", item=True),
    ("POST", "/console/items/{item_id}/mask"): admits("editor", item=True),
    # the operator's pages (publisher/console/operations.py, deliveries.py, drift.py)
    ("GET", "/console/operations"): admits("operator"),
    ("GET", "/console/operations/queue"): admits("operator"),
    ("GET", "/console/operations/workers"): admits("operator"),
    ("POST", "/console/channels/{kind}/pause"): admits("operator", form={"reason": "test"}),
    ("POST", "/console/channels/{kind}/resume"): admits("operator"),
    ("POST", "/console/channels/{kind}/retry-failed"): admits("operator"),
    ("POST", "/console/channels/{kind}/token"): admits("operator", form={"access_token": "x"}),
    ("POST", "/console/freeze"): admits("operator", form={"reason": "test"}),
    ("POST", "/console/freeze/lift"): admits("operator"),
    ("GET", "/console/deliveries"): admits("operator"),
    ("GET", "/console/deliveries/{delivery_id}"): admits("operator"),
    ("GET", "/console/deliveries/{delivery_id}/live"): admits("operator"),
    ("POST", "/console/deliveries/{delivery_id}/retry"): admits("operator"),
    ("POST", "/console/deliveries/{delivery_id}/cancel"): admits("operator"),
    ("POST", "/console/deliveries/{delivery_id}/adopt"): admits(
        "operator", form={"remote_id": "x"}
    ),
    ("POST", "/console/deliveries/{delivery_id}/mark-posted"): admits(
        "operator", form={"reason": "seen on the channel"}
    ),
    ("GET", "/console/drift"): admits("operator"),
    ("POST", "/console/drift/check"): admits("operator", form={"item": "999999"}),
    ("POST", "/console/drift/{drift_id}/repair"): admits("operator"),
}


def test_every_console_route_is_in_the_table() -> None:
    missing = sorted(CONSOLE - set(CONSOLE_ACCESS) - PUBLIC)
    assert not missing, f"console routes without a row in CONSOLE_ACCESS: {missing}"


@pytest.fixture
def ids(publisher_env: Settings, database: Database) -> dict[str, Any]:
    with database.session() as session:
        item = create_item(session, publisher_env, item_fields(department="sgj"), actor="test")
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
        return {
            "item_id": item.id,
            "delivery_id": delivery.id,
            "kind": "website",
            "drift_id": drift.id,
        }


def call(browser: TestClient, method: str, path: str, page: Page, csrf: str | None) -> Any:
    if method == "GET":
        return browser.get(path)
    data = dict(page.form)
    if csrf is not None:
        data["csrf_token"] = csrf
    return browser.post(path, data=data)


ROWS = sorted(CONSOLE_ACCESS.items())


@pytest.mark.parametrize(("route", "page"), ROWS, ids=[f"{m} {p}" for (m, p), _ in ROWS])
def test_each_console_route_admits_only_its_roles(
    route: tuple[str, str],
    page: Page,
    ids: dict[str, Any],
    new_browser: Callable[[], TestClient],
    database: Database,
) -> None:
    method, template = route
    path = template.format(**ids)
    anonymous = call(new_browser(), method, path, page, None)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")

    for role in ROLES:
        browser = new_browser()
        csrf = session_for(browser, database, BY_ROLE[role])
        if method != "GET":
            forged = call(browser, method, path, page, "not-the-token")
            assert forged.status_code == 403, f"{role}: a forged form was not refused"
        answer = call(browser, method, path, page, csrf)
        if role == "admin" or role in page.roles:
            assert answer.status_code != 403, f"{role} was refused {method} {path}"
            assert answer.status_code < 500, answer.text
        else:
            assert answer.status_code == 403, f"{role} was let into {method} {path}"
            assert "无权访问" in answer.text

    if page.item:
        other = new_browser()
        csrf = session_for(other, database, "editor2")
        refused = call(other, method, path, page, csrf)
        assert refused.status_code in (403, 404), "another department's editor got in"
