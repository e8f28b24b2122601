"""Text no store can hold: NUL (U+0000) in a query parameter or anywhere in a JSON body.

PostgreSQL refuses NUL in text (the driver fails the statement), so such a request would end
in a 500 after the service had done its work; SQLite would store it. `refuse_nul` is the first
dependency of every `/api/v1` route: it refuses the request with a 422 naming the parameter
(`query`) or the body's field (`body`, the path to it) and the rule `characters`, before any
service runs. The console's routes have their own (`publisher.console.web.storable_text`).

The body is read raw (it is cached for the route) and parsed only when it holds the escape
`\\u0000` (JSON cannot carry a raw NUL byte); a backslash escaped before it (`\\\\u0000`,
text that merely shows the escape) does not count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from fastapi import Request

from publisher.errors import FieldProblem, InvalidInput

# `\u0000` preceded by an even number of backslashes (none, or escaped backslashes).
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
CODEPOINT = "U+0000"


async def refuse_nul(request: Request) -> None:
    """Raise `InvalidInput` when a query parameter or the JSON body holds NUL."""
    problems = nul_fields(request.query_params.multi_items(), prefix="query.")
    if request.method not in ("GET", "HEAD", "DELETE") and _is_json(request):
        raw = await request.body()
        if NUL_ESCAPE.search(raw):
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None  # FastAPI's own validation names the broken JSON
            problems += [_problem(path) for path in _paths_with_nul(parsed, "")]
    if problems:
        raise InvalidInput(problems)


def nul_fields(fields: Iterable[tuple[str, object]], *, prefix: str = "") -> list[FieldProblem]:
    """A `characters` problem for each (name, value) pair whose name or text value holds NUL
    (query parameters here, form fields in the console), named `prefix` + name."""
    return [
        _problem(f"{prefix}{name}")
        for name, value in fields
        if "\x00" in name or (isinstance(value, str) and "\x00" in value)
    ]


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _paths_with_nul(value: Any, path: str) -> list[str]:
    """Where NUL stands in a parsed JSON value: `title`, `keywords[2]`, `a.b` (keys too)."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths_with_nul(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        found = []
        for key, v in value.items():
            where = f"{path}.{key}" if path else str(key)
            found += [where] if "\x00" in str(key) else _paths_with_nul(v, where)
        return found
    return []


def _problem(field: str) -> FieldProblem:
    return FieldProblem(
        field,
        "characters",
        f"{field} must not contain {CODEPOINT}",
        values={"codepoint": CODEPOINT},
    )
