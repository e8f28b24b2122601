"""System endpoints: health and uploaded images (public content), Prometheus metrics.

Metrics answer at the root (`/metrics`) to a scraper that sends the scrape token
(`PUBLISHER_METRICS_TOKEN`, compared in constant time; without the setting the root's
`/metrics` does not exist), and under `/api/v1` to an operator's or supervisor's token.

Uploaded images are served as the image type their upload was checked to be, and anything
else as a download (`application/octet-stream`): never as a type a browser would run from our
origin (HTML, SVG).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import create_engine, text

from publisher.api.routes_common import bearer, database_of, requires, settings_of
from publisher.config import Settings
from publisher.db import Database
from publisher.metrics import render_metrics
from publisher.models import Media, Role
from publisher.services.media import IMAGE_TYPES

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


def scrape_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """Admit the scraper that sends `PUBLISHER_METRICS_TOKEN`: 401 otherwise, 404 when no
    token is configured (the root's metrics are off)."""
    expected = settings_of(request).metrics_token
    if expected is None:
        raise HTTPException(
            404,
            detail="/metrics needs PUBLISHER_METRICS_TOKEN set; or read /api/v1/metrics "
            "with an operator's token",
        )
    given = credentials.credentials if credentials else ""
    # Digests of equal length: the comparison takes as long whatever was sent.
    if not hmac.compare_digest(_digest(given), _digest(expected.get_secret_value())):
        raise HTTPException(
            401,
            detail="send Authorization: Bearer <PUBLISHER_METRICS_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


SERVED_TYPES = {mime: kind.lower() for kind, mime in IMAGE_TYPES.items()}
DOWNLOAD = "application/octet-stream"


def media(sha256: str, request: Request) -> Response:
    """An uploaded image, inline as its checked type; any other stored type as a download."""
    with database_of(request).session() as session:
        found = session.get(Media, sha256.lower())
        if found is None:
            raise HTTPException(404, detail=f"no media {sha256}")
        extension = SERVED_TYPES.get(found.content_type)
        disposition = (
            f'inline; filename="{found.sha256}.{extension}"'
            if extension
            else f'attachment; filename="{found.sha256}"'
        )
        return Response(
            found.data,
            media_type=found.content_type if extension else DOWNLOAD,
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "Content-Disposition": disposition,
                # An image needs nothing else; even opened on its own, nothing in it runs.
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )


def add_system_routes(
    router: APIRouter, *, in_schema: bool = True, metrics_need: tuple[Role, ...] | None = None
) -> None:
    """/healthz and /metrics; the metrics for admins and the roles `metrics_need` names,
    or, when it is None, for the scraper with the scrape token."""
    router.add_api_route("/healthz", health, methods=["GET"], include_in_schema=in_schema)
    needs = [Depends(scrape_token if metrics_need is None else requires(*metrics_need))]
    router.add_api_route(
        "/metrics", metrics, methods=["GET"], include_in_schema=in_schema, dependencies=needs
    )


add_system_routes(router, metrics_need=(Role.OPERATOR, Role.SUPERVISOR))
root_router = APIRouter()
add_system_routes(root_router, in_schema=False)
root_router.add_api_route("/media/{sha256}", media, methods=["GET"], tags=["system"])
