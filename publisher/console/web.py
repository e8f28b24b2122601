"""What every console page stands on: who is signed in, CSRF, rendering, Beijing time.

A console session is a login token of the API (`publisher.services.users.login`, 12 h) kept in
an `HttpOnly`, `SameSite=Lax` cookie (`Secure` over TLS): the same token rules apply as to
the API (revoked, expired, disabled user → signed out), signing out revokes it, and nothing of
the session is stored but the token's hash. The CSRF token of a session is an HMAC of its
token, so it needs no storage and dies with the session; every form carries it as
`csrf_token`, and htmx sends it as `X-CSRF-Token` (`static/console.js` reads it from the
page's `<meta name="csrf-token">`). Before signing in, the login form is protected the same
way by a random cookie of its own (double submit).

Pages are rendered server-side from `templates/` (Jinja2, autoescaped) with `t()` of the
message catalogue (`publisher.i18n`) and the filters below.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from publisher.api.client_address import is_trusted, trusted_networks
from publisher.api.routes_common import database_of, settings_of
from publisher.api.storable_text import nul_fields
from publisher.auth import Principal, cached_principal, look_up_principal
from publisher.errors import InvalidInput
from publisher.i18n import t
from publisher.models import Role

SESSION_COOKIE = "publisher_session"
LOGIN_CSRF_COOKIE = "publisher_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
HERE = Path(__file__).resolve().parent

templates = Jinja2Templates(directory=HERE / "templates")


class LoginRequired(Exception):
    """No valid session: the page answers with the login form (`errors.install`)."""


class CsrfRefused(Exception):
    """A form or htmx request without this session's CSRF token (answered 403)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a console request."""

    principal: Principal
    token: str = ""

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def name(self) -> str:
        return self.principal.name or self.principal.actor

    def is_(self, *roles: Role) -> bool:
        """Whether the viewer has one of `roles` (an admin has every role)."""
        return self.role == Role.ADMIN or self.role in roles


def csrf_for(token: str) -> str:
    """The CSRF token of the session whose login token is `token`."""
    return hmac.new(b"publisher-console-csrf", token.encode(), hashlib.sha256).hexdigest()[:40]


def same(a: str | None, b: str) -> bool:
    return bool(a) and hmac.compare_digest(str(a), b)


async def viewer(request: Request) -> Viewer:
    """The signed-in user (FastAPI dependency); raises `LoginRequired` without a valid
    session. An unsafe method must carry the session's CSRF token (`CsrfRefused`)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    settings, database = settings_of(request), database_of(request)
    principal = cached_principal(settings, database, token) if token else None
    if principal is None and token:
        principal = await run_in_threadpool(look_up_principal, settings, database, token)
    if principal is None or principal.bootstrap:
        raise LoginRequired()
    request.state.principal = principal  # who was refused, if a 403 follows
    found = Viewer(principal, token)
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not same(sent, found.csrf):
            raise CsrfRefused()
    return found


async def storable_text(request: Request) -> None:
    """Every console route's first dependency: a query or form field holding NUL, which no
    PostgreSQL text can store (the driver would fail the request with a 500), raises
    `InvalidInput` naming the field (the 422 page)."""
    fields: list[tuple[str, object]] = list(request.query_params.multi_items())
    if request.method not in ("GET", "HEAD"):
        fields += list((await request.form()).multi_items())
    problems = nul_fields(fields)
    if problems:
        raise InvalidInput(problems)


def over_tls(request: Request) -> bool:
    """Whether the browser reached us over TLS (directly, or through a trusted proxy)."""
    if request.url.scheme == "https":
        return True
    proxies = trusted_networks(settings_of(request).trusted_proxies)
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and peer is not None and is_trusted(peer, proxies)


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=over_tls(request),
    )


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of ours only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    who: Viewer | None = None,
) -> HTMLResponse:
    """The page `template` with `context`, the viewer, their CSRF token and the catalogue."""
    values: dict[str, Any] = {"who": who, "csrf": who.csrf if who else "", **(context or {})}
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    """After a form post: see the result at `url` (303, so a reload does not post again)."""
    return RedirectResponse(url, status_code=303)


def htmx_redirect(request: Request, url: str) -> Response:
    """A redirect an htmx request follows in the whole page (`HX-Redirect`), else a 303."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return redirect(url)


# -- filters --------------------------------------------------------------------------------


def beijing(value: datetime | str | None, with_seconds: bool = False) -> str:
    """`2026-12-02 11:30` in Beijing time (no microseconds); '—' for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    shown = value.astimezone(BEIJING)
    return shown.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def day(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return beijing(value)[:10]
    return str(value)[:10]


def web_link(url: str | None) -> str | None:
    """`url` if it is a web address (http, https), to link; else None, to show as text only
    (a channel's answer or an operator's word could be `javascript:` or `data:`)."""
    scheme = (url or "").split(":", 1)[0].strip().lower()
    return url if scheme in ("http", "https") else None


templates.env.globals["t"] = t
templates.env.globals["Role"] = Role
templates.env.filters["beijing"] = beijing
templates.env.filters["day"] = day
templates.env.filters["web_link"] = web_link

__all__ = [
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "LoginRequired",
    "Viewer",
    "beijing",
    "csrf_for",
    "redirect",
    "render",
    "templates",
    "viewer",
]
