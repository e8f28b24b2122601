"""Error pages of the console: a page in Chinese where the API answers JSON.

A request for a console page (`is_console`) that raises `Forbidden` gets the 403 page (and the
refusal is audited as the API's are), `NotFound` the 404 page, `Conflict` a 409 page, bad input
(FastAPI's validation of a path, query or form field, or `InvalidInput`) a 422 page with each
problem in Chinese and nothing of the input echoed; without a session it is sent to `/login`
(htmx requests through `HX-Redirect`, so the whole page goes). Every other path keeps the
API's JSON handlers, which are wrapped, not replaced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from publisher.api.body_limit import BodyTooLarge, json_refusal
from publisher.api.refusals import note_refusal
from publisher.console.web import CsrfRefused, LoginRequired, htmx_redirect, render
from publisher.errors import Conflict, Forbidden, InvalidInput, NotFound
from publisher.i18n import t
from publisher.i18n.problems import zh, zh_pydantic

Handler = Callable[[Request, Exception], Awaitable[Response]]
CONSOLE_PREFIXES = ("/console", "/login", "/logout")


def is_console(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path.startswith(CONSOLE_PREFIXES)


def said(exc: Exception) -> str:
    """What staff read of a refusal: its Chinese text (`zh`) where it has one."""
    return getattr(exc, "zh", None) or str(exc)


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    context = {"status": status, "title": title, "detail": detail}
    return render(request, "error.html", context, status_code=status)


def too_large_page(request: Request, limit: int) -> Response:
    megabytes = f"{limit / 1_000_000:g}"
    return error_page(request, 413, t("error.413.title"), t("error.413.detail", mb=megabytes))


def body_refusal(request: Request, refusal: BodyTooLarge) -> Response:
    """`BodyLimitMiddleware`'s answer to a declared length past the cap: on a console path
    the page, elsewhere the API's JSON."""
    if is_console(request):
        return too_large_page(request, refusal.limit)
    return json_refusal(request, refusal)


def install(app: FastAPI) -> None:
    """Console pages for the errors above, in front of the API's handlers."""

    def wrapped(kind: type[Exception], page: Handler) -> None:
        api: Handler | None = app.exception_handlers.get(kind)  # type: ignore[assignment]

        async def handle(request: Request, exc: Exception) -> Response:
            if is_console(request) or api is None:
                return await page(request, exc)
            return await api(request, exc)

        app.add_exception_handler(kind, handle)

    async def login_required(request: Request, _exc: Exception) -> Response:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = "/login" if here == "/" else f"/login?next={quote(here, safe='')}"
        return htmx_redirect(request, target)

    async def csrf_refused(request: Request, _exc: Exception) -> Response:
        await note_refusal(request, 403, "console form without its CSRF token")
        return error_page(request, 403, t("error.csrf.title"), t("error.csrf.detail"))

    async def forbidden(request: Request, exc: Exception) -> Response:
        await note_refusal(request, 403, str(exc))
        return error_page(request, 403, t("error.403.title"), t("error.403.detail"))

    async def not_found(request: Request, _exc: Exception) -> Response:
        return error_page(request, 404, t("error.404.title"), t("error.404.detail"))

    async def conflict(request: Request, exc: Exception) -> Response:
        return error_page(request, 409, t("error.409.title"), said(exc))

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = "；".join(zh_pydantic(e) for e in exc.errors())
        return error_page(request, 422, t("error.422.title"), detail)

    async def invalid_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidInput)
        detail = "；".join(zh(p) for p in exc.problems)
        return error_page(request, 422, t("error.422.title"), detail)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return await not_found(request, exc)
        if exc.status_code == 403:
            return await forbidden(request, exc)
        if isinstance(exc, BodyTooLarge):
            return too_large_page(request, exc.limit)
        if exc.status_code == 400:  # the form parser's refusal (a field past 1 MB, bad framing)
            return error_page(request, 400, t("error.other.title"), t("error.400.detail"))
        return error_page(request, exc.status_code, t("error.other.title"), str(exc.detail))

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    wrapped(Forbidden, forbidden)
    wrapped(NotFound, not_found)
    wrapped(Conflict, conflict)
    wrapped(RequestValidationError, invalid_request)
    wrapped(InvalidInput, invalid_input)
    wrapped(StarletteHTTPException, http_error)
