"""The base of the two signed upsert channels: the website (§5.3) and the catalogue (§5.4).

Both protocols are the same shape, keyed by OUR identifier (the website's external id, the
catalogue's 索引号):

    PUT    {base}{path_for(key)}   upsert → 201/200 {id, url, status}
    GET    {base}{path_for(key)}   → 200 the record / 404
    DELETE {base}{path_for(key)}   → 204 withdrawn / 404 absent

The `id` in an answer is the server's own and never addresses anything: every path is built
from our key, and a receipt's `remote_id` is that key (the server's id is kept in
`state["server_id"]` for the operator). Every request carries the HMAC signature of
`channels.signing`. Writes are upserts, so repeating one is safe: create and update are the
same call.

A refused signature (wrong secret, unknown app id, clock skew over 300 s) is answered 401 and
surfaces as `AuthExpired(refreshable=False)`: nothing we could refresh fixes it, an operator
must correct the credentials or the clock, and the channel's deliveries wait meanwhile rather
than fail (the content is not at fault).

Both adapters are built from a `SignedUpsertSettings`: the base URL, the credentials and the
client timeout.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from channels.base import (
    Capability,
    HttpChannel,
    HttpResponse,
    Problem,
    Publication,
    Receipt,
    Remote,
    SharedStore,
)
from channels.errors import OutcomeUnknown, Retryable
from channels.signing import signed_headers

TITLE_MAX_CHARS = 200


@dataclass(frozen=True)
class SignedUpsertSettings:
    """What a signed upsert channel (the website, the catalogue) needs to run."""

    api_base: str
    app_id: str
    secret: str = field(repr=False)
    timeout: float = 10.0


class SignedUpsertChannel(HttpChannel):
    """A signed REST upsert channel; a subclass names its key, path and body.

    Hooks: `key_of(pub)` (our identifier), `path_for(key)` (the API path of that key),
    `payload(pub)` (the JSON body of the PUT), `more_problems(pub)` (its own preflight).
    `clock` gives Unix seconds for `X-Timestamp`; tests pass a skewed one.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CREATE, Capability.UPDATE, Capability.DELETE, Capability.LOOKUP}
    )
    # What the channel calls an item's title, in its own refusals (标题, 名称).
    title_label: ClassVar[str] = "标题"

    def __init__(
        self,
        api_base: str,
        app_id: str,
        secret: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(api_base, timeout=timeout)
        self.app_id = app_id
        self._secret = secret
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: SignedUpsertSettings, shared: SharedStore) -> Self:
        """The adapter for `settings` (the shared store is not used: nothing is counted)."""
        return cls(settings.api_base, settings.app_id, settings.secret, timeout=settings.timeout)

    # --- the hooks of a subclass --------------------------------------------------------------

    @abstractmethod
    def key_of(self, pub: Publication) -> str:
        """Our identifier of `pub` on this channel."""

    @abstractmethod
    def path_for(self, key: str) -> str:
        """The API path of the record keyed `key`."""

    @abstractmethod
    def payload(self, pub: Publication) -> dict[str, Any]:
        """The JSON body of the PUT."""

    def more_problems(self, pub: Publication) -> list[Problem]:
        """Preflight findings beyond the title's."""
        return []

    # --- the channel ----------------------------------------------------------------------------

    def sign(self, method: str, path: str, body: bytes) -> dict[str, str]:
        # The server signs what it sees: the full URL path, including any base prefix.
        server_path = urlsplit(self.api_base + path).path
        return signed_headers(self.app_id, self._secret, method, server_path, body, self._clock())

    def preflight(self, pub: Publication) -> list[Problem]:
        problems = []
        label = self.title_label
        if not pub.title.strip():
            problems.append(Problem(self.kind, "title", "required", f"{label}不能为空"))
        elif len(pub.title) > TITLE_MAX_CHARS:
            problems.append(
                Problem(
                    self.kind,
                    "title",
                    "max_length",
                    f"{label}不能超过{TITLE_MAX_CHARS}字",
                    {"limit": TITLE_MAX_CHARS},
                )
            )
        return problems + self.more_problems(pub)

    def create(self, pub: Publication) -> Receipt:
        """Upsert the record. Raises `ChannelError` subclasses only."""
        return self._put(pub)

    def update(self, pub: Publication, remote: Remote) -> Receipt:
        """The same upsert as `create`: the record is keyed by our identifier."""
        return self._put(pub)

    def delete(self, remote: Remote) -> None:
        """Withdraw the record; an absent one (404) is already what we want."""
        self.request("DELETE", self.path_for(recorded_key(remote)), absent_ok=True)

    def lookup(self, pub: Publication, remote: Remote | None) -> Receipt | None:
        """The live record of `pub` (always asked by our key), or None when it is absent."""
        key = self.key_of(pub)
        resp = self.request("GET", self.path_for(key), absent_ok=True)
        if resp is None:
            return None
        return self._receipt(answer_fields(resp, self.kind, write=False), key)

    def preview(self, pub: Publication) -> dict[str, Any]:
        """The request a publish would send (the signature headers are left out)."""
        return {"method": "PUT", "path": self.path_for(self.key_of(pub)), "body": self.payload(pub)}

    def _put(self, pub: Publication) -> Receipt:
        key = self.key_of(pub)
        resp = self.request("PUT", self.path_for(key), payload=self.payload(pub))
        assert resp is not None  # absent_ok is off: a 404 raises
        receipt = self._receipt(answer_fields(resp, self.kind, write=True), key)
        if receipt.content_hash:
            return receipt
        # The channel stores our hash; fall back to the one we sent if it did not echo it.
        return replace(receipt, content_hash=pub.content_hash)

    def _receipt(self, body: Mapping[str, Any], key: str) -> Receipt:
        content_hash = body.get("content_hash")
        server_id = body.get("id")
        return Receipt(
            remote_id=key,
            url=str(body["url"]),
            state={
                "key": key,
                "server_id": None if server_id is None else str(server_id),
                "status": body.get("status"),
            },
            content_hash=content_hash if isinstance(content_hash, str) else None,
        )

    def __repr__(self) -> str:  # never show the secret
        return f"{type(self).__name__}({self.api_base!r}, app_id={self.app_id!r})"


def recorded_key(remote: Remote) -> str:
    """Our key of a recorded copy: `state["key"]`, else the remote id (which is our key)."""
    key = remote.state.get("key")
    return str(key) if key else remote.remote_id


def answer_fields(resp: HttpResponse, kind: str, *, write: bool) -> Mapping[str, Any]:
    """The JSON object of a 2xx answer.

    Raises `OutcomeUnknown` (write) or `Retryable` (read) when it is not an object with a
    `url`: the write may have taken effect, but we cannot tell where.
    """
    body = resp.body
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        return body
    explanation = f"{kind}: answered {resp.status} without the expected id and url"
    if write:
        raise OutcomeUnknown(explanation, message=resp.text[:2000], http_status=resp.status)
    raise Retryable(explanation, message=resp.text[:2000], http_status=resp.status)
