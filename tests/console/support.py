"""Driving the console over HTTP in tests: sign in through the form or straight into a
session, read a page's CSRF token; and the rows the operator's pages are seeded with."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.auth import issue_token
from publisher.console.web import SESSION_COOKIE, csrf_for
from publisher.db import Database
from publisher.models import Delivery, Drift, DriftKind, DriftResolution, User
from publisher.services.users import LOGIN_TOKEN_LABEL, LOGIN_TOKEN_LIFETIME

PASSWORD = "correct horse battery staple"
# name → (role, departments): one user of each role; editors and reviewers of 社管局 (sgj), and
# an editor of 教育局 (jyj) for the other-department checks.
USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin1": ("admin", ()),
    "editor1": ("editor", ("sgj",)),
    "editor2": ("editor", ("jyj",)),
    "reviewer1": ("reviewer", ("sgj",)),
    "reviewer2": ("reviewer", ("sgj",)),
    "operator1": ("operator", ()),
    "supervisor1": ("supervisor", ()),
}
BY_ROLE = {"admin": "admin1", "editor": "editor1", "reviewer": "reviewer1"} | {
    "operator": "operator1",
    "supervisor": "supervisor1",
}


def login_csrf(browser: TestClient, path: str = "/login") -> str:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def sign_in(browser: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign `name` in through the login form; the CSRF token of the new session."""
    answer = browser.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": login_csrf(browser)},
    )
    assert answer.status_code == 303, answer.text
    return page_csrf(browser.get("/console/password").text)


def page_csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found and found.group(1), html[:500]
    return found.group(1)


def session_for(browser: TestClient, database: Database, name: str) -> str:
    """Sign `name` in without the form (the token the form would give, in the session
    cookie: no password hashing, for tests of many users); the session's CSRF token."""
    with database.session() as session:
        user = session.scalars(select(User).where(User.name == name)).one()
        token = issue_token(session, user, LOGIN_TOKEN_LABEL, expires_in=LOGIN_TOKEN_LIFETIME)
    browser.cookies.set(SESSION_COOKIE, token)
    return csrf_for(token)


def signed_in(
    new_browser: Callable[[], TestClient], database: Database, name: str
) -> tuple[TestClient, str]:
    """A new browser with `name` signed in (`session_for`), and the session's CSRF token."""
    browser = new_browser()
    return browser, session_for(browser, database, name)


def reported_drift(session: Session, delivery: Delivery) -> Drift:
    """An open drift of `delivery`: its post is missing from the channel (flushed)."""
    drift = Drift(
        delivery_id=delivery.id,
        item_id=delivery.item_id,
        channel_kind=delivery.channel_kind,
        kind=DriftKind.MISSING,
        resolution=DriftResolution.REPORTED,
    )
    session.add(drift)
    session.flush()
    return drift
