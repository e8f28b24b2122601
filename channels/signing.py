"""The HMAC request signature of the website and catalogue protocols (docs/protocols.md §1, §4).

`X-Signature` = hex HMAC-SHA256(secret, "METHOD\\nPATH\\nTIMESTAMP\\nsha256hex(body)"), where
PATH is the URL path the server sees (no query) and TIMESTAMP is Unix seconds in `X-Timestamp`,
accepted within `MAX_SKEW_SECONDS` of the server's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_SKEW_SECONDS = 300


def signature(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    message = "\n".join([method.upper(), path, timestamp, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    app_id: str, secret: str, method: str, path: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {
        "X-App-Id": app_id,
        "X-Timestamp": timestamp,
        "X-Signature": signature(secret, method, path, timestamp, body),
    }


def verify(
    secrets: dict[str, str],
    headers: dict[str, str],
    method: str,
    path: str,
    body: bytes,
    now: float | None = None,
) -> str | None:
    """None if the request is signed correctly, else the reason it is not (no secret in it)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    app_id = lowered.get("x-app-id")
    timestamp = lowered.get("x-timestamp", "")
    given = lowered.get("x-signature", "")
    if not app_id or app_id not in secrets:
        return "unknown or missing X-App-Id"
    try:
        skew = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return "X-Timestamp is not Unix seconds"
    if skew > MAX_SKEW_SECONDS:
        return f"X-Timestamp is {int(skew)}s from the server clock (limit {MAX_SKEW_SECONDS}s)"
    expected = signature(secrets[app_id], method, path, timestamp, body)
    if not hmac.compare_digest(expected, given):
        return "X-Signature does not match"
    return None
