"""Channels: status, pause, resume, new credentials (never echoed, logged or audited)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from publisher.api.routes_common import (
    READERS,
    channel_pool,
    database_of,
    requires,
    settings_of,
)
from publisher.api.schemas import CredentialsIn, FreezeIn, ReasonIn
from publisher.auth import Principal
from publisher.delivery.ops import retry_failed
from publisher.models import Role
from publisher.services.channel_controls import (
    channel_statuses,
    credentials_renewed,
    pause_channel,
    resume_channel,
    store_credentials,
    warm_pool,
)
from publisher.services.freeze import active_freeze, freeze_view, lift_freeze, start_freeze
from publisher.shared import shared_store

router = APIRouter(tags=["channels"])


@router.get("/channels")
def list_channels(request: Request, _: Principal = Depends(requires(*READERS))) -> dict[str, Any]:
    """Each kind: enabled (or why not), paused, needs re-authorisation, deliveries by state,
    circuit breaker (state, next probe), daily budgets (used, limit, reset) and health."""
    pool = channel_pool(request)
    readings = warm_pool(pool)
    with database_of(request).session() as session:
        return {"channels": channel_statuses(session, pool, readings)}


@router.post("/channels/{kind}/pause")
def pause(
    kind: str,
    request: Request,
    body: ReasonIn | None = None,
    who: Principal = Depends(requires(Role.OPERATOR)),
) -> dict[str, Any]:
    """Stop sending to this channel; its deliveries wait (deferred) and none fail."""
    with database_of(request).session() as session:
        row = pause_channel(session, kind, body.reason if body else None, actor=who.actor)
        return {"kind": kind, "paused": row.paused, "paused_reason": row.paused_reason}


@router.post("/channels/{kind}/resume")
def resume(
    kind: str, request: Request, who: Principal = Depends(requires(Role.OPERATOR))
) -> dict[str, Any]:
    """Send to this channel again; what it deferred becomes due now."""
    with database_of(request).session() as session:
        row = resume_channel(session, kind, actor=who.actor)
        return {"kind": kind, "paused": row.paused}


@router.put("/channels/{kind}/credentials")
def set_credentials(
    kind: str,
    body: CredentialsIn,
    request: Request,
    who: Principal = Depends(requires(Role.OPERATOR)),
) -> dict[str, Any]:
    """Give the channel a new access token; clears "needs re-authorisation" and wakes its
    waiting deliveries. The token is not echoed."""
    settings = settings_of(request)
    database = database_of(request)
    store_credentials(shared_store(settings, database), kind, body.access_token)
    channel_pool(request).forget(kind)
    with database.session() as session:
        woken = credentials_renewed(session, kind, actor=who.actor)
    return {"kind": kind, "needs_reauth": False, "woken": woken}


@router.post("/channels/{kind}/retry-failed")
def retry_all_failed(
    kind: str, request: Request, who: Principal = Depends(requires(Role.OPERATOR))
) -> dict[str, Any]:
    """Start every failed delivery of this channel again, each with a new failure budget."""
    with database_of(request).session() as session:
        return {"kind": kind, "retried": retry_failed(session, kind, actor=who.actor)}


@router.get("/freeze")
def get_freeze(request: Request, _: Principal = Depends(requires(*READERS))) -> dict[str, Any]:
    """The organisation-wide freeze in force, if any."""
    with database_of(request).session() as session:
        return freeze_view(active_freeze(session))


@router.post("/freeze", status_code=201)
def freeze(
    body: FreezeIn, request: Request, who: Principal = Depends(requires(Role.OPERATOR))
) -> dict[str, Any]:
    """Hold all publishing and edits except items marked urgent (withdrawals still go)."""
    with database_of(request).session() as session:
        return freeze_view(start_freeze(session, body.reason, actor=who.actor))


@router.delete("/freeze")
def lift(request: Request, who: Principal = Depends(requires(Role.OPERATOR))) -> dict[str, Any]:
    """Lift the freeze; what it held goes out now."""
    with database_of(request).session() as session:
        lifted, woken = lift_freeze(session, actor=who.actor)
        return {**freeze_view(lifted), "woken": woken}
