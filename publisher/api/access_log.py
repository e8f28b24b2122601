"""Signed query strings stay out of the access log.

uvicorn's access log prints each request's path with its query string. WeChat signs its
callbacks in the query (`signature`, `timestamp`, `nonce`, and `openid`, a follower's id): one
logged URL was enough to replay a callback with another body. `RedactQuery`, installed on the
`uvicorn.access` logger by `redact_access_log`, drops the query of `/wechat/callback`
altogether and, on every other path, blanks the values of the parameters that sign or
authorise a request (`SIGNING_PARAMETERS`).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

CALLBACK_PATHS = frozenset({"/wechat/callback"})
SIGNING_PARAMETERS = frozenset(
    {"signature", "msg_signature", "nonce", "echostr", "timestamp", "access_token", "token"}
)
REDACTED = "redacted"
# uvicorn's access record: '%s - "%s %s HTTP/%s" %d' % (client, method, path?query, version, status)
_PATH_ARG = 2


def redact_path(path_with_query: str) -> str:
    """`path_with_query` with no callback query and no signing parameter's value."""
    path, _, query = path_with_query.partition("?")
    if not query:
        return path_with_query
    if path in CALLBACK_PATHS:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SIGNING_PARAMETERS for name, _ in pairs):
        return path_with_query
    kept = [(n, REDACTED if n.lower() in SIGNING_PARAMETERS else v) for n, v in pairs]
    return f"{path}?{urlencode(kept)}"


class RedactQuery(logging.Filter):
    """Rewrites the path argument of uvicorn's access records; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG:
            path = args[_PATH_ARG]
            if isinstance(path, str):
                record.args = (*args[:_PATH_ARG], redact_path(path), *args[_PATH_ARG + 1 :])
        return True


def redact_access_log() -> None:
    """Install `RedactQuery` on uvicorn's access logger (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())
