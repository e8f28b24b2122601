"""Refused requests (401, 403, and throttled sign-ins) in the audit trail: `auth.refused`
rows with the method, path, status, reason and client address; never a token or password.

Cheap by design: one small transaction after the request's own, and at most
`RECORDED_PER_WINDOW` rows per client address and minute per process. Past that, refusals are
only counted, and the next row recorded for that address says how many were left out
(`suppressed`), so that a flood of bad tokens cannot turn into a flood of writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from publisher.api.routes_common import client_address
from publisher.audit import audit
from publisher.auth import Principal
from publisher.db import Database
from publisher.errors import Forbidden

log = logging.getLogger(__name__)

REFUSED_ACTION = "auth.refused"
RECORDED_PER_WINDOW = 20
WINDOW_SECONDS = 60.0
_MAX_TRACKED = 10_000


class RefusalLimiter:
    """Per client address: how many refusals may still be recorded in this window, and how
    many were left out since the last recorded one."""

    def __init__(self, per_window: int = RECORDED_PER_WINDOW, window: float = WINDOW_SECONDS):
        self.per_window = per_window
        self.window = window
        self._lock = threading.Lock()
        # address → [window start, recorded in window, left out since the last recorded]
        self._seen: dict[str, list[float]] = {}

    def admit(self, address: str) -> int | None:
        """None: leave this refusal out; else record it, with this many left out before it."""
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= _MAX_TRACKED:
                self._seen.clear()
            entry = self._seen.setdefault(address, [now, 0, 0])
            if now - entry[0] >= self.window:
                entry[0], entry[1] = now, 0
            if entry[1] >= self.per_window:
                entry[2] += 1
                return None
            entry[1] += 1
            suppressed, entry[2] = int(entry[2]), 0
            return suppressed


def record_refusal(
    database: Database,
    *,
    actor: str,
    method: str,
    path: str,
    status: int,
    reason: str,
    address: str | None,
    suppressed: int,
) -> None:
    """One `auth.refused` row, in a transaction of its own (the request's was rolled back)."""
    details: dict[str, Any] = {"method": method, "path": path, "status": status, "reason": reason}
    if suppressed:
        details["suppressed"] = suppressed
    with database.session() as session:
        audit(
            session,
            actor,
            REFUSED_ACTION,
            f"{method} {path}"[:64],
            client_address=address,
            **details,
        )


async def note_refusal(request: Request, status: int, reason: str) -> None:
    """Record that `request` was refused, unless this address has had its share of rows;
    never fails the response (a failure to record is logged)."""
    limiter: RefusalLimiter = request.app.state.refusal_limiter
    address = client_address(request)
    suppressed = limiter.admit(address or "-")
    if suppressed is None:
        return
    principal: Principal | None = getattr(request.state, "principal", None)
    try:
        await run_in_threadpool(
            record_refusal,
            request.app.state.database,
            actor=principal.actor if principal else "anonymous",
            method=request.method,
            path=request.url.path,
            status=status,
            reason=reason[:300],
            address=address,
            suppressed=suppressed,
        )
    except Exception:  # the refusal stands whether or not it could be written down
        log.warning("could not record a refused request", exc_info=True)


def install_refusal_handlers(app: FastAPI) -> None:
    """401 and 403 answers, whoever raised them (the bearer check, a role or department
    check, a service), are recorded before they are sent."""
    app.state.refusal_limiter = RefusalLimiter()

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (401, 403):
            await note_refusal(request, exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)

    async def on_forbidden(request: Request, exc: Exception) -> Response:
        await note_refusal(request, 403, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=403)

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        StarletteHTTPException: on_http_exception,
        Forbidden: on_forbidden,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
