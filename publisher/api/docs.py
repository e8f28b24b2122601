"""The API's own documentation page (`/docs`, Swagger UI), served entirely from our origin.

FastAPI's default page loads Swagger UI from a CDN, which would run someone else's script
with a signed-in user's token at hand, and fails on a network without the internet. The
files come from the `fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1), only
the three the page uses. The page's one inline script (Swagger UI's start) is allowed by its
hash in the Content-Security-Policy (`publisher.api.security_headers`), not by
`'unsafe-inline'`. No ReDoc page and no OAuth2 redirect page: tokens are plain bearer tokens.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def install_docs(app: FastAPI) -> tuple[str, ...]:
    """Add `/docs` and its assets to `app` (built with `docs_url=None`); returns the CSP
    sources (`'sha256-…'`) of the page's inline scripts."""
    assert app.openapi_url is not None
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        # No call to the public validator service (and its badge) from the page.
        swagger_ui_parameters={"validatorUrl": None},
    ).body

    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, detail=f"no documentation asset {name}")
        return FileResponse(
            ASSETS_DIR / name,
            media_type=ASSETS[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.add_api_route(DOCS_URL, docs, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{ASSETS_URL}/{{name}}", asset, methods=["GET"], include_in_schema=False)
    return tuple(_script_hash(script) for script in inline_scripts(bytes(page).decode()))


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._inside: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not dict(attrs).get("src"):
            self._inside = []

    def handle_data(self, data: str) -> None:
        if self._inside is not None:
            self._inside.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._inside is not None:
            self.scripts.append("".join(self._inside))
            self._inside = None


def inline_scripts(html: str) -> list[str]:
    """The text of each `<script>` without `src` in `html`, exactly as a browser hashes it."""
    parser = _InlineScripts()
    parser.feed(html)
    parser.close()
    return parser.scripts


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"
