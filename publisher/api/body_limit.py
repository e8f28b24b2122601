"""A cap on the bytes of every request body (issue 12), counted as the body streams in, so that
a chunked body without Content-Length is held to it as well: 413 with the limit in `detail`.

A Content-Length above the cap is answered before the app runs. Past the cap mid-stream,
reading the next chunk raises `BodyTooLarge`, an HTTPException, which FastAPI lets through
its body parsing to the app's handler (a JSON `detail`). Starlette's own `max_body_size`
counts the same way, but answers a too-large Content-Length with plain text whatever the
app's handlers say. Whoever builds the app may give the refusal's answer (`refusal`: the
console answers a page of its own on its paths); by default the JSON `detail`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body larger than {limit} bytes")
        self.limit = limit


def json_refusal(_request: Request, refusal: BodyTooLarge) -> Response:
    return JSONResponse({"detail": refusal.detail}, status_code=413)


class BodyLimitMiddleware:
    """At most `limit` bytes of body per request; `larger` gives paths (uploads) their own;
    `refusal` answers a declared length past the limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        larger: Mapping[str, int],
        refusal: Callable[[Request, BodyTooLarge], Response] = json_refusal,
    ) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            answer = self.refusal(Request(scope), BodyTooLarge(limit))
            await answer(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
