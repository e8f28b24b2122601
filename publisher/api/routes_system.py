"""System endpoints: health and uploaded images (public content), Prometheus metrics.

Metrics answer without a token at the root (`/metrics`, for a scraper on the internal
network) and with an operator's or supervisor's token under `/api/v1`, where every route but
health and sign-in needs one.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import create_engine, text

from publisher.api.routes_common import database_of, requires, settings_of
from publisher.config import Settings
from publisher.db import Database
from publisher.metrics import render_metrics
from publisher.models import Media, Role

log = logging.getLogger(__name__)

router = APIRouter(tags=["system"])

CHECK_TIMEOUT_SECONDS = 2


def check_database(database: Database) -> str:
    with database.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


def check_broker(settings: Settings) -> str:
    """Whether the broker answers: Redis PING, or the embedded SQLite transport's database."""
    url = settings.resolved_broker_url()
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    if url.startswith("sqla+"):
        engine = create_engine(url.removeprefix("sqla+"))
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
        return "ok"
    from kombu import Connection

    with Connection(url, connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1)
    return "ok"


def health(request: Request) -> JSONResponse:
    """200 {"status": "ok", "checks": {...}} when the database and broker answer, else 503."""
    checks: dict[str, Any] = {}
    for name, check in (
        ("database", lambda: check_database(database_of(request))),
        ("broker", lambda: check_broker(settings_of(request))),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # any failure is the answer, not a crash
            # Unauthenticated: say what failed, not the driver's text (hosts, users, URLs).
            log.warning("health check %s failed", name, exc_info=True)
            checks[name] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


def metrics(request: Request) -> Response:
    """Prometheus text, read from the database so every process reports the same numbers."""
    return Response(render_metrics(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


def media(sha256: str, request: Request) -> Response:
    with database_of(request).session() as session:
        found = session.get(Media, sha256.lower())
        if found is None:
            raise HTTPException(404, detail=f"no media {sha256}")
        return Response(
            found.data,
            media_type=found.content_type,
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )


def add_system_routes(
    router: APIRouter, *, in_schema: bool = True, metrics_need: tuple[Role, ...] | None = None
) -> None:
    """/healthz and /metrics; the metrics for admins and the roles `metrics_need` names,
    or for anyone when it is None."""
    router.add_api_route("/healthz", health, methods=["GET"], include_in_schema=in_schema)
    needs = [] if metrics_need is None else [Depends(requires(*metrics_need))]
    router.add_api_route(
        "/metrics", metrics, methods=["GET"], include_in_schema=in_schema, dependencies=needs
    )


add_system_routes(router, metrics_need=(Role.OPERATOR, Role.SUPERVISOR))
root_router = APIRouter()
add_system_routes(root_router, in_schema=False)
root_router.add_api_route("/media/{sha256}", media, methods=["GET"], tags=["system"])
