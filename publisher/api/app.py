"""The FastAPI application: `/api/v1` (docs/architecture.md), `/healthz`, `/metrics`, `/media/…`,
`/docs` (served from our origin, `publisher.api.docs`), security headers on every response
(`publisher.api.security_headers`).

`create_app` builds it (tests use it as it is); `serve_app` is the uvicorn factory that
`publisher api` serves (`uvicorn --factory publisher.api.app:serve_app`), which also freezes the
loaded application once started (`freeze_startup_objects`). Each request owns its transaction
(`Database.session()`); services never commit. Errors of the services map onto HTTP here, once:
InvalidInput 422 (FastAPI's shape), NotFound 404, Conflict 409, Forbidden 403; every 401
and 403 is recorded in the audit trail (`refusals`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from channels.wechat import finished_key
from publisher import console
from publisher.api import (
    routes_audit,
    routes_calendar,
    routes_catalog,
    routes_channels,
    routes_checks,
    routes_deliveries,
    routes_drift,
    routes_items,
    routes_review,
    routes_users,
    routes_wechat,
)
from publisher.api.access_log import redact_access_log
from publisher.api.body_limit import BodyLimitMiddleware
from publisher.api.client_address import ClientAddressMiddleware
from publisher.api.docs import install_docs
from publisher.api.refusals import install_refusal_handlers
from publisher.api.routes_common import problems_detail
from publisher.api.routes_system import root_router
from publisher.api.routes_system import router as system_router
from publisher.api.security_headers import SecurityHeadersMiddleware
from publisher.api.storable_text import refuse_nul
from publisher.api.wechat_callback import CallbackKeys, wechat_callback_router
from publisher.audit import audit
from publisher.config import Settings, get_settings
from publisher.db import Database, get_database
from publisher.delivery.ops import delivery_for_wechat_publish, poke_delivery
from publisher.delivery.wechat_digest import record_mass_result
from publisher.dispatch import celery_sender, install_sender, poke_wechat_publish_later
from publisher.errors import Conflict, InvalidInput, NotFound
from publisher.i18n import t
from publisher.i18n.problems import zh_pydantic
from publisher.metrics import metrics_registry
from publisher.process import freeze_startup_objects
from publisher.shared import first_use as claim_first_use
from publisher.shared import shared_store

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def serve_app() -> FastAPI:
    """The factory `publisher api` serves: the application, frozen once it has started, its
    access log free of signed query strings (uvicorn configured its logging before this)."""
    redact_access_log()
    return create_app(freeze_on_start=True)


def create_app(settings: Settings | None = None, *, freeze_on_start: bool = False) -> FastAPI:
    settings = settings or get_settings()
    database = get_database(settings)
    if settings.bootstrap_token:
        log.warning(
            "PUBLISHER_BOOTSTRAP_TOKEN is set: it serves only to create the first admin "
            "(POST /api/v1/users) and is refused once one exists; unset it afterwards"
        )
    # What a request commits reaches the workers through this app's own Celery client.
    install_sender(celery_sender(settings))
    app = FastAPI(
        title="publisher",
        version="1",
        description="Publish once, reach every channel.",
        lifespan=_frozen_on_start if freeze_on_start else None,
        docs_url=None,  # ours, without a CDN (install_docs)
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = metrics_registry(database)

    # NUL refused before any service runs (PostgreSQL cannot store it): 422, not 500.
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(refuse_nul)])
    for module in (routes_items, routes_deliveries, routes_channels, routes_catalog, routes_drift):
        api.include_router(module.router)
    api.include_router(routes_review.router)
    api.include_router(routes_checks.router)
    api.include_router(routes_audit.router)
    api.include_router(routes_calendar.router)
    api.include_router(routes_users.router)
    api.include_router(routes_wechat.router)
    api.include_router(system_router)
    app.include_router(api)
    app.include_router(root_router)
    _mount_wechat_callback(app, settings, database)
    _install_error_handlers(app)
    console.install(app)  # after the API's handlers, which it wraps for its own pages
    app.add_middleware(ClientAddressMiddleware, trusted_proxies=settings.trusted_proxies)
    uploads = {f"{API_PREFIX}/media": routes_items.MAX_UPLOAD_REQUEST_BYTES}
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_request_bytes,
        larger=uploads,
        refusal=console.body_refusal,
    )
    app.add_middleware(
        SecurityHeadersMiddleware,
        script_hashes=install_docs(app),
        trusted_proxies=settings.trusted_proxies,
    )
    return app


@asynccontextmanager
async def _frozen_on_start(_app: FastAPI) -> AsyncIterator[None]:
    """Started: freeze what is loaded, so that no request waits for a full collection of
    the whole application."""
    freeze_startup_objects()
    yield


def _install_error_handlers(app: FastAPI) -> None:
    def handler(status: int, body: Callable[[Any], Any]) -> Callable[..., Any]:
        async def handle(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": body(exc)}, status_code=status)

        return handle

    app.add_exception_handler(InvalidInput, handler(422, lambda e: problems_detail(e.problems)))
    app.add_exception_handler(NotFound, handler(404, str))
    app.add_exception_handler(Conflict, handler(409, str))
    app.add_exception_handler(RequestValidationError, _validation_error)
    # JSON may carry a lone surrogate ("\ud800"), which no store, hash or answer can encode:
    # bad input, refused where it is first encoded (the transaction rolls back), never a 500.
    app.add_exception_handler(
        UnicodeEncodeError,
        handler(
            422,
            lambda _e: [
                {
                    "loc": ["body"],
                    "msg": UNENCODABLE,
                    "type": "unicode",
                    "msg_zh": t("problem.unicode"),
                }
            ],
        ),
    )
    install_refusal_handlers(app)  # 401 and 403 (Forbidden included), recorded


UNENCODABLE = "text must be valid Unicode (a lone surrogate cannot be stored)"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, with the offending input made encodable (it echoes what was sent), each
    entry with `msg_zh`, what staff read (`publisher.i18n.problems.zh_pydantic`)."""
    assert isinstance(exc, RequestValidationError)
    detail = [{**e, "msg_zh": zh_pydantic(e)} for e in jsonable_encoder(exc.errors())]
    return JSONResponse({"detail": _encodable(detail)}, status_code=422)


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    if isinstance(value, dict):
        return {k: _encodable(v) for k, v in value.items()}
    return value


def _mount_wechat_callback(app: FastAPI, settings: Settings, database: Database) -> None:
    """WeChat's push of "publish job finished" makes the waiting delivery look now, rather
    than at its next (rationed: 100 calls a day) poll.

    The article id it names is left under `finished_key` for the adapter, which adopts it
    only once `getarticle` shows the article links to the item's own page: the callback is
    a hint, never proof. A job no delivery waits on yet (WeChat can finish before the worker
    has recorded the job's id) keeps its hint only briefly. A finished mass send settles its
    digest (sent, failed, or rejected under 群发保护).
    """
    if not settings.wechat_callback_token:  # not configured: WeChat cannot call us
        return
    keys = CallbackKeys(
        settings.wechat_callback_token, settings.wechat_aes_key, settings.wechat_appid
    )

    def first_use(key: str, seconds: float) -> bool:
        return claim_first_use(settings, key, seconds, database)

    def on_publish_finished(publish_id: str, article_id: str | None) -> None:
        with database.session() as session:
            delivery_id = delivery_for_wechat_publish(session, publish_id)
            if delivery_id is not None:
                poke_delivery(session, delivery_id)
            audit(
                session,
                "wechat",
                "wechat.publish_finished",
                f"delivery:{delivery_id}" if delivery_id else f"wechat_publish:{publish_id}"[:64],
                publish_id=publish_id,
                article_id=article_id,
                published=article_id is not None,
            )
        if article_id:  # lets the adapter confirm it without a rationed freepublish/get
            ttl = FINISHED_HINT_SECONDS if delivery_id else UNCLAIMED_HINT_SECONDS
            shared_store(settings, database).set(finished_key(publish_id), article_id, ttl)
        if delivery_id is None:
            # WeChat can finish before the worker has recorded the job's id: look again
            # shortly, from a worker, rather than wait for the next rationed poll.
            poke_wechat_publish_later(publish_id)

    def on_mass_finished(msg_id: str, status: str) -> None:
        with database.session() as session:
            digest_id = record_mass_result(session, msg_id, status)
            subject = f"wechat_digest:{digest_id}" if digest_id else f"wechat_mass:{msg_id}"
            audit(
                session,
                "wechat",
                "wechat.mass_finished",
                subject[:64],
                msg_id=msg_id,
                status=status,
            )

    app.include_router(
        wechat_callback_router(keys, first_use, on_publish_finished, on_mass_finished)
    )


# How long a finished job's article id waits for the adapter: a week for a job a delivery
# waits on; for one none waits on, the few minutes the worker needs to record its job.
FINISHED_HINT_SECONDS = 7 * 24 * 3600
UNCLAIMED_HINT_SECONDS = 600
