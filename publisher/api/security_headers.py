"""Security headers on every response, whichever route, error handler or middleware made it.

- `X-Content-Type-Options: nosniff`: a browser uses the type we send (an uploaded file or an
  error echoing input is never run as script or read as HTML).
- `Content-Security-Policy`: our origin only; scripts from our origin plus the inline scripts
  whose hashes the API's own pages declare (`/docs`), images also as `data:` (Swagger UI's
  icons); no plugins, no `<base>`, and no framing (`frame-ancestors 'none'`, with
  `X-Frame-Options: DENY` for browsers that predate it).
- `Referrer-Policy: no-referrer`: links out of the docs or the console carry no URL of ours.
- `Strict-Transport-Security` only on requests that came over TLS: the scheme of the request,
  or `X-Forwarded-Proto: https` from a proxy `PUBLISHER_TRUSTED_PROXIES` names (from anyone
  else, anyone could claim it). Browsers ignore HSTS received over plain HTTP anyway; sending
  it only over TLS keeps the answer honest.

A route that needs a stricter policy (`/media`) sets its own header, which is kept. An
unhandled error, which Starlette would answer from outside every middleware (without these
headers), is answered here with a plain 500 and then raised on, for Starlette to log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.api.client_address import is_trusted, trusted_networks

HSTS = "max-age=31536000"
INTERNAL_ERROR = json.dumps({"detail": "internal error"}).encode()


def content_security_policy(script_hashes: Iterable[str] = ()) -> str:
    scripts = " ".join(["'self'", *script_hashes])
    return (
        "default-src 'self'; "
        f"script-src {scripts}; "
        "img-src 'self' data:; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


class SecurityHeadersMiddleware:
    """Adds the headers above to each HTTP response that does not already have them."""

    def __init__(
        self, app: ASGIApp, script_hashes: Iterable[str] = (), trusted_proxies: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.networks = trusted_networks(trusted_proxies)
        self.headers = {
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": content_security_policy(script_hashes),
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = dict(self.headers)
        if self.over_tls(scope):
            extra["Strict-Transport-Security"] = HSTS

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send_with_headers({"type": "http.response.body", "body": INTERNAL_ERROR})
            raise

    def over_tls(self, scope: Scope) -> bool:
        """Whether the client's connection is TLS: ours, or the trusted proxy's word for it
        (the last `X-Forwarded-Proto` value, the one the connecting proxy wrote)."""
        if scope.get("scheme") == "https":
            return True
        client = scope.get("client")
        if not client or not is_trusted(client[0], self.networks):
            return False
        protos = [
            proto.strip().lower()
            for name, value in scope.get("headers", [])
            if name == b"x-forwarded-proto"
            for proto in value.decode("latin-1").split(",")
        ]
        return bool(protos) and protos[-1] == "https"
