"""What every route shares: the app's settings and database, the caller, the channel pool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from publisher.audit import current_client_address
from publisher.auth import Principal, bootstrap_refusal, cached_principal, look_up_principal
from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.publication import ChannelPool
from publisher.errors import FieldProblem, Forbidden
from publisher.i18n import t
from publisher.i18n.problems import zh
from publisher.models import Role
from publisher.services.limits import CODE_MAX, ID_MAX, OFFSET_MAX
from publisher.services.queries import Page
from publisher.shared import shared_store

bearer = HTTPBearer(auto_error=False, description="a token from `publisher token create`")


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def channel_pool(request: Request) -> ChannelPool:
    """The app's adapters, built once (building them per request was most of a publish's
    cost); tokens given at run time are read by the adapters at call time."""
    pool: ChannelPool | None = getattr(request.app.state, "channel_pool", None)
    if pool is None:
        settings = settings_of(request)
        pool = ChannelPool(settings, shared_store(settings, database_of(request)))
        request.app.state.channel_pool = pool
    return pool


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def client_address(request: Request) -> str | None:
    """Where the request comes from: as the audit trail records it (behind a trusted proxy,
    the forwarded address), else the connecting address."""
    return current_client_address() or (request.client.host if request.client else None)


async def current_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """The caller, from `Authorization: Bearer <token>`; 401 when missing, unknown, revoked,
    expired or its user disabled; 403 for the bootstrap token once an admin exists.

    Async, so that a token known to this process costs no trip through the thread pool; only
    a lookup in the database runs there.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorised("send Authorization: Bearer <token>")
    settings, database, token = settings_of(request), database_of(request), credentials.credentials
    principal = cached_principal(settings, database, token)
    if principal is None:
        principal = await run_in_threadpool(look_up_principal, settings, database, token)
    if principal is None:
        raise _unauthorised("unknown, revoked or expired token")
    request.state.principal = principal  # who was refused, if a 403 follows
    if principal.bootstrap:
        refusal = await run_in_threadpool(bootstrap_refusal, database)
        if refusal is not None:
            raise Forbidden(refusal, zh=t("refusal.admin_exists"))
    return principal


def requires(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting admins and `roles` (403 naming the role needed otherwise)."""

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(*roles)
        return principal

    return dependency


# Row ids as SQLite and PostgreSQL hold them (signed 64-bit): beyond, 422, not a driver error.
RowId = Annotated[int, Path(ge=1, le=ID_MAX)]
RowIdFilter = Annotated[int | None, Query(ge=1, le=ID_MAX)]
# A code or name to filter on (a domain, department, channel, kind).
CodeFilter = Annotated[str | None, Query(max_length=CODE_MAX)]


def page(limit: int = 50, offset: Annotated[int, Query(le=OFFSET_MAX)] = 0) -> Page:
    """`limit` clamped to 1–500, a negative `offset` read as 0; a deeper one than
    `OFFSET_MAX` is refused (422): narrow the filters instead."""
    return Page(limit=max(1, min(limit, 500)), offset=max(0, offset))


# Every role: what anyone signed in may read (channels, freeze, domains, deliveries, with
# editors and reviewers scoped to their departments' items).
READERS = (Role.EDITOR, Role.REVIEWER, Role.OPERATOR, Role.SUPERVISOR)
# Who reads items: editors and reviewers (their departments'), supervisors (every one).
# Operators see deliveries and channels, not the items' text.
ITEM_READERS = (Role.EDITOR, Role.REVIEWER, Role.SUPERVISOR)


def problems_detail(problems: list[FieldProblem]) -> list[dict[str, Any]]:
    """Service problems in FastAPI's 422 shape: loc, msg, type (+ channel when one objects),
    and `msg_zh`, what staff read (`publisher.i18n.problems.zh`)."""
    detail = []
    for p in problems:
        entry: dict[str, Any] = {
            "loc": ["body", p.field],
            "msg": p.message,
            "type": p.rule,
            "msg_zh": zh(p),
        }
        if p.channel:
            entry["channel"] = p.channel
        detail.append(entry)
    return detail
