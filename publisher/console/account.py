"""Signing in and out, the password form, and `/` (each role's home page).

Sign-in takes the API's rules as they are: the same throttle per name and address
(`login_wait`), the same audit rows (`auth.login`, `auth.login_failed`), the same 12-hour login
token, which becomes the session cookie (`publisher.console.web`). Signing out revokes it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from publisher.api.routes_common import channel_pool, client_address, database_of
from publisher.audit import audit
from publisher.auth import hash_token, revoke_token
from publisher.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Viewer,
    new_login_csrf,
    redirect,
    render,
    safe_next,
    same,
    set_cookie,
    viewer,
)
from publisher.errors import InvalidInput
from publisher.i18n import t
from publisher.i18n.problems import zh
from publisher.models import ApiToken, Role
from publisher.services import users as people

router = APIRouter(include_in_schema=False)

# Where each role starts (`/`); the other pages say what each role may do.
HOME = {
    Role.EDITOR: "/console/items",
    Role.REVIEWER: "/console/items?view=review",
    Role.OPERATOR: "/console/operations",
    Role.SUPERVISOR: "/console/supervision",
    Role.ADMIN: "/console/operations",
}
FIELD_MAX = 200  # a name or password longer than this is refused before hashing


@router.get("/")
async def home(who: Viewer = Depends(viewer)) -> Response:
    return redirect(HOME.get(who.role, "/console/items"))


def login_page(
    request: Request, *, error: str | None = None, status_code: int = 200, name: str = ""
) -> HTMLResponse:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        {
            "error": error,
            "name": name,
            "login_csrf": token,
            "next": safe_next(request.query_params.get("next")),
        },
        status_code=status_code,
    )
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/login")
async def login_form(request: Request) -> HTMLResponse:
    return login_page(request)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    password: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    csrf_token: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not same(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return login_page(request, error=t("login.expired"), status_code=403, name=username)
    if not username.strip() or not password:
        return login_page(request, error=t("login.missing"), status_code=422, name=username)
    address = client_address(request)
    wait = await run_in_threadpool(
        people.login_wait, channel_pool(request).shared, username, address
    )
    if wait is not None:
        return login_page(
            request, error=t("login.throttled", seconds=int(wait)), status_code=429, name=username
        )

    def sign_in() -> str | None:
        with database_of(request).session() as session:
            signed = people.login(session, username, password, client_address=address)
            return None if signed is None else signed.token

    token = await run_in_threadpool(sign_in)
    if token is None:
        return login_page(request, error=t("login.wrong"), status_code=401, name=username)
    response = redirect(safe_next(next))
    set_cookie(
        response,
        request,
        SESSION_COOKIE,
        token,
        max_age=int(people.LOGIN_TOKEN_LIFETIME.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, who: Viewer = Depends(viewer)) -> Response:
    with database_of(request).session() as session:
        row = session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(who.token))
        ).first()
        if row is not None:
            revoke_token(session, row.id)
        audit(
            session,
            who.principal.actor,
            "auth.logout",
            f"user:{who.name}",
            client_address=client_address(request),
        )
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/console/password")
def password_form(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    return password_page(request, who)


def password_page(
    request: Request, who: Viewer, *, status_code: int = 200, **context: object
) -> HTMLResponse:
    context["min_length"] = people.MIN_PASSWORD_LENGTH
    return render(request, "password.html", context, status_code=status_code, who=who)


@router.post("/console/password")
def change_password(
    request: Request,
    current: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    new: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    again: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    who: Viewer = Depends(viewer),
) -> Response:
    """The signed-in user's own password: the current one first; the new one twice."""
    errors: dict[str, str] = {}
    if new != again:
        errors["again"] = t("password.mismatch")
    with database_of(request).session() as session:
        if people.verify_password(session, who.name, current) is None:
            errors["current"] = t("password.wrong_current")
        if not errors:
            try:
                people.set_password(
                    session, who.name, new, actor=who.name, client_address=client_address(request)
                )
            except InvalidInput as exc:
                errors["new"] = "；".join(zh(p) for p in exc.problems)
    if errors:
        return password_page(request, who, errors=errors, status_code=422)
    return password_page(request, who, done=True)
