"""The web console (README, Console): server-rendered pages (Jinja2) with htmx for the live
parts, served by the API process; staff-facing text from `publisher.i18n`.

`install(app)` adds the pages, their static files (`/console/static`, shipped: htmx, our CSS
and script, no CDN) and their error pages. Each area of the console is a module with its own
router, listed in `ROUTERS`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from publisher.console import (
    account,
    audit_log,
    compose,
    deliveries,
    drift,
    errors,
    items,
    operations,
    supervision,
)
from publisher.console.web import HERE

# compose before items: `/console/items/new` is not an item id.
ROUTERS = (
    account.router,
    compose.router,
    items.router,
    supervision.router,
    audit_log.router,
    operations.router,
    deliveries.router,
    drift.router,
)


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    errors.install(app)


__all__ = ["install"]
