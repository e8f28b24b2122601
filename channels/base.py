"""The small base every channel adapter stands on.

A channel declares what it can do (`capabilities`) and fills in four hooks: `create`,
`update`, `delete`, `lookup`. The sequence inside each is fixed by the base: render the
publication into the channel's shape, send it, parse the receipt. `HttpChannel.request` maps
every HTTP outcome onto the typed errors of `channels.errors`, so a hook never has to.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import requests
import tenacity

from channels.errors import (
    AuthExpired,
    ChannelError,
    OutcomeUnknown,
    Permanent,
    RateLimited,
    Retryable,
)

if TYPE_CHECKING:
    from channels.budgets import BudgetUse

READ_ATTEMPTS = 3


class Capability(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LOOKUP = "lookup"


@dataclass(frozen=True)
class Publication:
    """Everything a channel may show of one revision of one item, already sanitised."""

    item_id: int
    revision_id: int
    revision_number: int
    external_id: str
    title: str
    summary: str
    body_html: str
    domain_code: str
    domain_name: str
    catecode: str
    department_code: str
    department_name: str
    org_code: str
    index_no: str
    written_date: date
    publish_date: date
    content_hash: str
    short_title: str | None = None
    doc_no: str | None = None
    keywords: tuple[str, ...] = ()
    cover_image_url: str | None = None
    website_url: str | None = None
    push_tags: tuple[str, ...] | None = None
    validity: str = "有效"
    # A channel's own short title by channel kind; it wins over `short_title`. Left out of
    # the hash (a dict has none): publications stay usable as keys, and equal ones hash alike.
    short_titles: Mapping[str, str] = field(default_factory=dict, hash=False)
    # The WeChat article's digest as the editor wrote it; None: cut from the summary.
    wechat_digest: str | None = None

    def title_for(self, kind: str) -> str:
        """The title channel `kind` shows: its own short title, else the item's short title,
        else the full title."""
        return self.short_titles.get(kind) or self.short_title or self.title


@dataclass(frozen=True)
class Remote:
    """What we recorded of the channel's copy: its id, public URL and private state."""

    remote_id: str
    url: str | None = None
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """The channel's answer to a write or a lookup.

    `complete=False` means the channel accepted the work but finishes it asynchronously (e.g.
    WeChat's freepublish): the engine calls `lookup` again after `poll_after` seconds.
    `content_hash` is the hash of the revision the channel holds, when the channel tells us.
    `note` is what the operator should know about how the answer was reached (e.g. a hint
    the adapter refused), kept as the attempt's explanation.
    """

    remote_id: str
    url: str | None = None
    state: Mapping[str, Any] = field(default_factory=dict)
    complete: bool = True
    poll_after: float | None = None
    content_hash: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Problem:
    """A preflight finding: this channel would refuse this field for this rule. `message` is
    the channel's text; `values` the rule's figures (`limit`, `length`, …), from which the
    product words the problem in its own catalogue."""

    channel: str
    field: str
    rule: str
    message: str
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)


class SharedStore(Protocol):
    """State shared by every worker: Redis in production, the database when embedded.

    Values under a token key (`token_key`, `is_secret_key`) are secrets: the store keeps them
    sealed at rest and answers None for one it cannot open, as for one that is not there.
    """

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None: ...

    def delete(self, key: str) -> None: ...

    def take_slot(self, key: str, limit: int, window_seconds: float) -> float | None:
        """Count one event in the current window; return None if allowed, else seconds to wait."""
        ...

    def add(self, key: str, value: str, ttl_seconds: float) -> bool:
        """Set `key` unless it is set (atomic across workers, e.g. a lock that lapses after
        `ttl_seconds`); True if this call set it."""
        ...

    def count(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        """Add `by` to the counter `key` (atomic across workers) and return its new value; a
        counter starts from 0 and is forgotten `ttl_seconds` after it started."""
        ...


SECRET_KEY_SUFFIX = ":access_token"


def token_key(kind: str) -> str:
    """The shared-store key of `kind`'s access token (a secret: kept sealed)."""
    return f"{kind}{SECRET_KEY_SUFFIX}"


def is_secret_key(key: str) -> bool:
    """Whether the shared store keeps the value of `key` sealed: channel tokens, not counters
    or rate windows."""
    return key.endswith(SECRET_KEY_SUFFIX)


class Channel(ABC):
    """One channel kind. Subclasses set `kind`, `capabilities` and the hooks they support."""

    kind: ClassVar[str]
    title: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    # Channels that link to the website page wait until it exists (docs/architecture.md).
    needs_website_url: ClassVar[bool] = False

    def preflight(self, pub: Publication) -> list[Problem]:
        """What this channel would refuse in `pub`, found before anything is sent."""
        return []

    @abstractmethod
    def create(self, pub: Publication) -> Receipt:
        """Make the channel show `pub`. Raises `ChannelError` subclasses only."""

    def update(self, pub: Publication, remote: Remote) -> Receipt:
        """Replace the channel's copy with `pub` (only with `Capability.UPDATE`)."""
        raise NotImplementedError(f"{self.kind} cannot update in place")

    def delete(self, remote: Remote) -> None:
        """Withdraw the channel's copy; an already-absent copy is not an error."""
        raise NotImplementedError(f"{self.kind} cannot delete")

    def lookup(self, pub: Publication, remote: Remote | None) -> Receipt | None:
        """Find the channel's copy of `pub` (None: the channel does not have it)."""
        raise NotImplementedError(f"{self.kind} cannot look up")

    def health(self) -> dict[str, Any]:
        """A cheap status for the operator's channel list."""
        return {}

    def preview(self, pub: Publication) -> dict[str, Any]:
        """How this channel would show `pub`, built locally: no network call, nothing secret."""
        return {}

    def budget_usage(self) -> list[BudgetUse]:
        """Today's use of each daily budget the channel keeps (`channels.budgets`), read
        from the shared store: no call to the channel."""
        return []

    @classmethod
    def state_without_refused_job(cls, state: Mapping[str, Any]) -> dict[str, Any]:
        """`state` once the channel refused the job a lookup was waiting on (nothing of it is
        out there): what the next write must not take for work in progress. Channels that
        keep asynchronous jobs in their state drop them here."""
        return dict(state)


def json_default(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, default=json_default, sort_keys=True).encode()


@dataclass
class HttpResponse:
    status: int
    body: Any
    text: str
    elapsed_ms: int


class HttpChannel(Channel):
    """A channel spoken to over HTTP with JSON answers.

    `request` raises:
    - `Retryable` for a connection that failed before the request was sent, 5xx, 408, busy;
    - `RateLimited` for 429 (with Retry-After);
    - `AuthExpired` for 401;
    - `Permanent` for any other 4xx, with the channel's text;
    - `OutcomeUnknown` for a write whose answer was lost or garbled (read timeout, cut
      connection, a body that is not JSON): it may have taken effect.
    """

    def __init__(self, api_base: str, *, timeout: float = 10.0) -> None:
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def sign(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """Headers that authenticate this request (none by default)."""
        return {}

    def request(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        ok: tuple[int, ...] = (200, 201, 204),
        absent_ok: bool = False,
    ) -> HttpResponse | None:
        """Send one request. Returns None for a 404 when `absent_ok`.

        A read (GET) whose exchange failed (connection refused or cut, timeout) is tried again
        at once, twice at most, with a short jittered wait: reads are idempotent, and a lookup
        that rides out a blip saves the delivery a full backoff. Writes are never repeated
        here: the engine decides.
        """
        if method != "GET":
            return self._request_once(method, path, payload=payload, ok=ok, absent_ok=absent_ok)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(READ_ATTEMPTS),
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=1.0),
            # Only a failed exchange (no HTTP answer at all); a channel that answered 5xx or
            # garbage is left to the engine's backoff and its operator-visible attempt rows.
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, Retryable) and exc.http_status is None
            ),
            reraise=True,
        )
        result: HttpResponse | None = retrying(
            self._request_once, method, path, payload=payload, ok=ok, absent_ok=absent_ok
        )
        return result

    def _request_once(
        self,
        method: str,
        path: str,
        *,
        payload: Any,
        ok: tuple[int, ...],
        absent_ok: bool,
    ) -> HttpResponse | None:
        body = b"" if payload is None else dumps(payload)
        headers = {"Accept": "application/json", **self.sign(method, path, body)}
        if payload is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        write = method not in ("GET", "HEAD")
        started = time.monotonic()
        try:
            resp = self.http.request(
                method,
                self.api_base + path,
                data=body or None,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise transport_error(self.kind, exc, write=write) from exc
        elapsed = int((time.monotonic() - started) * 1000)
        return self._answer(resp, method, write=write, ok=ok, absent_ok=absent_ok, elapsed=elapsed)

    def _answer(
        self,
        resp: requests.Response,
        method: str,
        *,
        write: bool,
        ok: tuple[int, ...],
        absent_ok: bool,
        elapsed: int,
    ) -> HttpResponse | None:
        status, text = resp.status_code, resp.text
        if status == 404 and absent_ok:
            return None
        body: Any = None
        if text.strip():
            try:
                body = resp.json()
            except ValueError:
                body = None
        code, message = self.error_fields(body, text)
        common: dict[str, Any] = {"code": code, "message": message, "http_status": status}
        if status in ok:
            if text.strip() and body is None:
                explanation = f"{self.kind}: answered {status} with a body that is not JSON"
                if write:
                    raise OutcomeUnknown(explanation, **common)
                raise Retryable(explanation, **common)
            return HttpResponse(status, body, text, elapsed)
        if status == 429:
            wait = _retry_after(resp.headers.get("Retry-After"))
            raise RateLimited(f"{self.kind}: rate limit reached", until=_in_seconds(wait), **common)
        if status == 401:
            raise AuthExpired(f"{self.kind}: credentials refused", refreshable=False, **common)
        if status >= 500 or status == 408:
            raise Retryable(f"{self.kind}: the channel is failing ({status})", **common)
        raise Permanent(f"{self.kind}: the channel refused the request ({status})", **common)

    def error_fields(self, body: Any, text: str) -> tuple[str | None, str]:
        """The channel's own error code and message, from a parsed body or the raw text."""
        if isinstance(body, dict):
            code = body.get("code") or body.get("error_code")
            message = body.get("message") or body.get("error") or body.get("detail")
            if message is not None:
                return (None if code is None else str(code)), str(message)
        return None, text[:2000]


def transport_error(
    channel: str,
    exc: requests.RequestException,
    *,
    write: bool,
    what: str = "the request",
    message: str | None = None,
) -> ChannelError:
    """The typed error for an HTTP exchange that produced no answer.

    `OutcomeUnknown` when a write may have reached the channel (a read timeout, a connection
    cut after sending), else `Retryable`. `message` replaces the exception text (redacted).
    """
    text = redact_query_secrets(str(exc) if message is None else message)
    if isinstance(exc, requests.ConnectTimeout):
        return Retryable(f"{channel}: could not connect in time for {what}", message=text)
    if isinstance(exc, requests.Timeout):
        if write:
            return OutcomeUnknown(f"{channel}: no answer to {what} after it was sent", message=text)
        return Retryable(f"{channel}: no answer to {what}", message=text)
    if isinstance(exc, requests.ConnectionError) and write and request_was_sent(exc):
        return OutcomeUnknown(
            f"{channel}: the connection broke after {what} was sent", message=text
        )
    return Retryable(f"{channel}: could not reach the channel for {what}", message=text)


_QUERY_SECRET = re.compile(r"((?:access_token|secret|appsecret|signature)=)[^&\s'\")]+", re.I)


def redact_query_secrets(text: str) -> str:
    """`text` with the values of secret query parameters (tokens in URLs) replaced by ***.

    requests puts the URL, query included, into its exception messages, and those messages
    are stored in attempt rows and shown to operators.
    """
    return _QUERY_SECRET.sub(r"\1***", text)


def request_was_sent(exc: requests.ConnectionError) -> bool:
    """Whether a connection error happened after the request went out (not at connect)."""
    text = str(exc)
    return not any(
        marker in text
        for marker in (
            "Connection refused",
            "Failed to establish",
            "Name or service not known",
            "NewConnectionError",
            "No route to host",
        )
    )


def _retry_after(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else 60.0
    except ValueError:
        return 60.0


def _in_seconds(seconds: float) -> datetime:
    from datetime import UTC, timedelta

    return datetime.now(UTC) + timedelta(seconds=seconds)


__all__ = [
    "Capability",
    "Channel",
    "ChannelError",
    "HttpChannel",
    "HttpResponse",
    "Problem",
    "Publication",
    "Receipt",
    "Remote",
    "SharedStore",
    "is_secret_key",
    "token_key",
]
