"""People and their tokens: `POST /login`, `GET`/`POST /users` (admins), `GET /tokens`,
`DELETE /tokens/{id}` (admins: any; others: their own)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from publisher.api.refusals import note_refusal
from publisher.api.routes_common import (
    READERS,
    RowId,
    channel_pool,
    client_address,
    current_principal,
    database_of,
    requires,
)
from publisher.api.schemas import Code
from publisher.auth import BOOTSTRAP_ONLY, Principal, admin_exists
from publisher.errors import Forbidden
from publisher.i18n import t
from publisher.models import Role
from publisher.services import users as people
from publisher.services.limits import CODES_MAX, NAME_MAX

router = APIRouter(tags=["people"])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=NAME_MAX, description="1 to 32 letters, digits, '.', '_' or '-'")
    role: Role
    departments: list[Code] = Field(
        default_factory=list,
        max_length=CODES_MAX,
        description="required for editors and reviewers, else refused",
    )
    password: str | None = Field(
        default=None,
        description=f"at least {people.MIN_PASSWORD_LENGTH} characters; none: tokens only",
    )


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=people.MAX_PASSWORD_LENGTH)


async def user_creator(who: Principal = Depends(current_principal)) -> Principal:
    """Admins; and the bootstrap token while no admin exists (`current_principal` refuses
    it afterwards)."""
    if not who.bootstrap:
        who.require()
    return who


@router.get("/users")
def list_users(request: Request, _: Principal = Depends(requires())) -> dict[str, Any]:
    """Every user: role, departments, whether a password is set, when disabled."""
    with database_of(request).session() as session:
        return {"users": [people.user_view(u) for u in people.list_users(session)]}


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(
    body: UserIn, request: Request, who: Principal = Depends(user_creator)
) -> dict[str, Any]:
    """A new user (admins). The bootstrap token creates the first admin here, and nothing
    else. 422 names each bad field and rule."""
    if who.bootstrap and body.role != Role.ADMIN:
        raise Forbidden(BOOTSTRAP_ONLY, zh=t("refusal.bootstrap_only"))
    with database_of(request).session() as session:
        # Checked again in this transaction: two bootstrap calls at once make one admin.
        if who.bootstrap and admin_exists(session):
            raise Forbidden(
                "an admin user exists: the bootstrap token is no longer accepted",
                zh=t("refusal.admin_exists"),
            )
        user = people.create_user(
            session,
            name=body.name,
            role=body.role,
            departments=body.departments,
            password=body.password,
            actor=who.actor,
        )
        return people.user_view(user)


@router.get("/tokens")
def list_tokens(
    request: Request, all: bool = False, who: Principal = Depends(requires(*READERS))
) -> dict[str, Any]:
    """Tokens, newest first, never the token itself (its first characters only): an
    admin's view has every user's, anyone else's their own. Revoked and expired ones only
    with `all=true`."""
    owner = None if who.role == Role.ADMIN else who.user_id
    with database_of(request).session() as session:
        rows = people.list_tokens(session, user_id=owner, include_inactive=all)
        return {"tokens": [people.token_view(t) for t in rows]}


@router.delete("/tokens/{token_id}")
def revoke_token(
    token_id: RowId, request: Request, who: Principal = Depends(requires(*READERS))
) -> dict[str, Any]:
    """Revoke a token (admins: any; others: their own, else 403). Refused at once by this
    process, within 5 seconds by the others."""
    owner = None if who.role == Role.ADMIN else who.user_id
    with database_of(request).session() as session:
        row = people.revoke_user_token(session, token_id, owner_id=owner, actor=who.actor)
        return people.token_view(row)


@router.post("/login", responses={401: {}, 429: {}})
async def login(body: LoginIn, request: Request) -> JSONResponse:
    """A token of the user for `LOGIN_TOKEN_LIFETIME` (12 h) when the password is theirs.
    401 otherwise (the same answer whether the name exists or not); 429 with Retry-After
    when the name or the address has tried too often; failures are audited."""
    address = client_address(request)
    wait = await run_in_threadpool(
        people.login_wait, channel_pool(request).shared, body.name, address
    )
    if wait is not None:
        await note_refusal(request, 429, "sign-in attempts throttled")
        return JSONResponse(
            {"detail": f"登录尝试过于频繁，请 {int(wait)} 秒后再试 (too many sign-in attempts)"},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(int(wait))},
        )

    def sign_in() -> dict[str, Any] | None:
        with database_of(request).session() as session:
            signed = people.login(session, body.name, body.password, client_address=address)
            if signed is None:
                return None
            return {
                "token": signed.token,
                "token_type": "bearer",
                "expires_at": signed.expires_at.isoformat(),
                "user": people.user_view(signed.user),
            }

    answer = await run_in_threadpool(sign_in)
    if answer is None:
        return JSONResponse(
            {"detail": "用户名或密码错误 (wrong name or password)"},
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    return JSONResponse(answer)
