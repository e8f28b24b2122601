"""The official website CMS channel (DESIGN §5.3, a stable protocol).

    PUT    {base}/api/articles/{external_id}   upsert → 201/200 {id, url, status}
    GET    {base}/api/articles/{external_id}   → 200 the article / 404
    DELETE {base}/api/articles/{external_id}   → 204 withdrawn / 404 absent

Every request carries the HMAC signature of `channels.signing`. Writes are upserts keyed by
our own id, so repeating one is safe: create and update are the same call.

A refused signature (wrong secret, unknown app id, clock skew over 300 s) is answered 401 and
surfaces as `AuthExpired(refreshable=False)`: nothing we could refresh fixes it, an operator
must correct the credentials or the clock, and the channel's deliveries wait meanwhile rather
than fail (the content is not at fault).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import quote, urlsplit

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
from channels.registry import ChannelDisabled
from channels.signing import signed_headers

if TYPE_CHECKING:
    from publisher.config import Settings

TITLE_MAX_CHARS = 200
BODY_MAX_BYTES = 1_000_000


class SignedHttpChannel(HttpChannel):
    """An `HttpChannel` whose requests carry the website/catalogue HMAC signature.

    `clock` gives Unix seconds for `X-Timestamp`; tests pass a skewed one.
    """

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

    def sign(self, method: str, path: str, body: bytes) -> dict[str, str]:
        # The server signs what it sees: the full URL path, including any base prefix.
        server_path = urlsplit(self.api_base + path).path
        return signed_headers(self.app_id, self._secret, method, server_path, body, self._clock())

    def __repr__(self) -> str:  # never show the secret
        return f"{type(self).__name__}({self.api_base!r}, app_id={self.app_id!r})"


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


def missing_settings(kind: str, values: Mapping[str, str | None]) -> None:
    """Raise `ChannelDisabled` naming every unset `PUBLISHER_*` variable in `values`."""
    unset = [name for name, value in values.items() if not value]
    if unset:
        raise ChannelDisabled(f"{kind}: disabled until {', '.join(unset)} are set")


class WebsiteChannel(SignedHttpChannel):
    kind: ClassVar[str] = "website"
    title: ClassVar[str] = "松山湖官方网站"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CREATE, Capability.UPDATE, Capability.DELETE, Capability.LOOKUP}
    )

    @classmethod
    def from_settings(cls, settings: Settings, shared: SharedStore) -> Self:
        """The adapter for `settings`. Raises `ChannelDisabled` when not configured."""
        missing_settings(
            cls.kind,
            {
                "PUBLISHER_WEBSITE_API_BASE": settings.website_api_base,
                "PUBLISHER_WEBSITE_APP_ID": settings.website_app_id,
                "PUBLISHER_WEBSITE_SECRET": settings.website_secret,
            },
        )
        assert settings.website_api_base and settings.website_app_id and settings.website_secret
        return cls(
            settings.website_api_base,
            settings.website_app_id,
            settings.website_secret,
            timeout=settings.http_timeout_seconds,
        )

    def preflight(self, pub: Publication) -> list[Problem]:
        problems = []
        if not pub.title.strip():
            problems.append(Problem(self.kind, "title", "required", "标题不能为空"))
        elif len(pub.title) > TITLE_MAX_CHARS:
            problems.append(
                Problem(self.kind, "title", "max_length", f"标题不能超过{TITLE_MAX_CHARS}字")
            )
        if len(pub.body_html.encode()) > BODY_MAX_BYTES:
            problems.append(Problem(self.kind, "body_html", "max_bytes", "正文不能超过1MB"))
        return problems

    def create(self, pub: Publication) -> Receipt:
        """Upsert the article. Raises `ChannelError` subclasses only."""
        return self._put(pub)

    def update(self, pub: Publication, remote: Remote) -> Receipt:
        """The same upsert as `create`: the CMS keys articles by our external id."""
        return self._put(pub)

    def delete(self, remote: Remote) -> None:
        """Withdraw the article; an absent one (404) is already what we want."""
        self.request("DELETE", _article_path(remote.remote_id), absent_ok=True)

    def lookup(self, pub: Publication, remote: Remote | None) -> Receipt | None:
        """The published article, or None when the CMS does not show it."""
        external_id = remote.remote_id if remote else pub.external_id
        resp = self.request("GET", _article_path(external_id), absent_ok=True)
        if resp is None:
            return None
        body = answer_fields(resp, self.kind, write=False)
        return _receipt(body, external_id)

    def _put(self, pub: Publication) -> Receipt:
        resp = self.request("PUT", _article_path(pub.external_id), payload=article_payload(pub))
        assert resp is not None  # absent_ok is off: a 404 raises
        body = answer_fields(resp, self.kind, write=True)
        receipt = _receipt(body, pub.external_id)
        # The channel stores our hash; fall back to the one we sent if it did not echo it.
        return receipt if receipt.content_hash else replace(receipt, content_hash=pub.content_hash)


def article_payload(pub: Publication) -> dict[str, Any]:
    """The article body of DESIGN §5.3; dates as ISO strings."""
    return {
        "title": pub.title,
        "content_html": pub.body_html,
        "column": pub.domain_code,
        "index_no": pub.index_no,
        "publisher": pub.department_name,
        "doc_no": pub.doc_no,
        "written_date": pub.written_date.isoformat(),
        "publish_date": pub.publish_date.isoformat(),
        "keywords": list(pub.keywords),
        "attachments": [],
        "content_hash": pub.content_hash,
    }


def _article_path(external_id: str) -> str:
    return f"/api/articles/{quote(external_id, safe='')}"


def _receipt(body: Mapping[str, Any], external_id: str) -> Receipt:
    content_hash = body.get("content_hash")
    return Receipt(
        remote_id=str(body.get("id") or external_id),
        url=str(body["url"]),
        state={"status": body.get("status")},
        content_hash=content_hash if isinstance(content_hash, str) else None,
    )
