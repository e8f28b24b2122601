"""The Dongguan open-government catalogue channel (DESIGN §5.4, a stable protocol).

    PUT    {base}/api/catalogue/{index_no}   upsert → 201/200 {id, url, status}
    GET    {base}/api/catalogue/{index_no}   → 200 the entry / 404
    DELETE {base}/api/catalogue/{index_no}   → 204 revoked (撤销) / 404 absent

`index_no` is `{org_code}/{year}-{serial:05d}`; its slash stays a path separator. The entry's
原文链接 is the website article, so this channel waits for it (`needs_website_url`). The
receipt's url is the catalogue's public entry page. Signature and auth errors are as for the
website (see `channels.website`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import quote

from channels.base import Capability, Problem, Publication, Receipt, Remote, SharedStore
from channels.website import SignedHttpChannel, answer_fields, missing_settings

if TYPE_CHECKING:
    from publisher.config import Settings

TITLE_MAX_CHARS = 200
SUMMARY_MAX_CHARS = 2000


class CatalogueChannel(SignedHttpChannel):
    kind: ClassVar[str] = "catalogue"
    title: ClassVar[str] = "东莞市政府信息公开目录"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CREATE, Capability.UPDATE, Capability.DELETE, Capability.LOOKUP}
    )
    needs_website_url: ClassVar[bool] = True

    @classmethod
    def from_settings(cls, settings: Settings, shared: SharedStore) -> Self:
        """The adapter for `settings`. Raises `ChannelDisabled` when not configured."""
        missing_settings(
            cls.kind,
            {
                "PUBLISHER_CATALOGUE_API_BASE": settings.catalogue_api_base,
                "PUBLISHER_CATALOGUE_APP_ID": settings.catalogue_app_id,
                "PUBLISHER_CATALOGUE_SECRET": settings.catalogue_secret,
            },
        )
        assert settings.catalogue_api_base and settings.catalogue_app_id
        assert settings.catalogue_secret
        return cls(
            settings.catalogue_api_base,
            settings.catalogue_app_id,
            settings.catalogue_secret,
            timeout=settings.http_timeout_seconds,
        )

    def preflight(self, pub: Publication) -> list[Problem]:
        problems = []
        if not pub.title.strip():
            problems.append(Problem(self.kind, "title", "required", "名称不能为空"))
        elif len(pub.title) > TITLE_MAX_CHARS:
            problems.append(
                Problem(self.kind, "title", "max_length", f"名称不能超过{TITLE_MAX_CHARS}字")
            )
        if len(pub.summary) > SUMMARY_MAX_CHARS:
            problems.append(
                Problem(
                    self.kind, "summary", "max_length", f"内容概述不能超过{SUMMARY_MAX_CHARS}字"
                )
            )
        return problems

    def create(self, pub: Publication) -> Receipt:
        """Upsert the catalogue entry. Raises `ChannelError` subclasses only.

        A publication without `website_url` is sent as is and refused by the catalogue
        (`Permanent`): the engine never calls this channel before the website page exists.
        """
        return self._put(pub)

    def update(self, pub: Publication, remote: Remote) -> Receipt:
        """The same upsert as `create`: the catalogue keys entries by 索引号."""
        return self._put(pub)

    def delete(self, remote: Remote) -> None:
        """Revoke (撤销) the entry; an absent one (404) is already what we want."""
        self.request("DELETE", _entry_path(remote.remote_id), absent_ok=True)

    def lookup(self, pub: Publication, remote: Remote | None) -> Receipt | None:
        """The live catalogue entry, or None when the catalogue does not list it."""
        index_no = remote.remote_id if remote else pub.index_no
        resp = self.request("GET", _entry_path(index_no), absent_ok=True)
        if resp is None:
            return None
        return _receipt(answer_fields(resp, self.kind, write=False), index_no)

    def _put(self, pub: Publication) -> Receipt:
        resp = self.request("PUT", _entry_path(pub.index_no), payload=entry_payload(pub))
        assert resp is not None  # absent_ok is off: a 404 raises
        receipt = _receipt(answer_fields(resp, self.kind, write=True), pub.index_no)
        # The channel stores our hash; fall back to the one we sent if it did not echo it.
        return receipt if receipt.content_hash else replace(receipt, content_hash=pub.content_hash)


def entry_payload(pub: Publication) -> dict[str, Any]:
    """The catalogue entry of DESIGN §5.4 (政府信息公开条例 Art. 12 fields)."""
    return {
        "index_no": pub.index_no,
        "title": pub.title,
        "summary": pub.summary,
        "catecode": pub.catecode,
        "publisher": pub.department_name,
        "written_date": pub.written_date.isoformat(),
        "publish_date": pub.publish_date.isoformat(),
        "doc_no": pub.doc_no,
        "keywords": list(pub.keywords),
        "validity": pub.validity,
        "url": pub.website_url,
        "content_hash": pub.content_hash,
    }


def _entry_path(index_no: str) -> str:
    # The slash between org code and serial is part of the protocol's path.
    return f"/api/catalogue/{quote(index_no, safe='/')}"


def _receipt(body: Mapping[str, Any], index_no: str) -> Receipt:
    content_hash = body.get("content_hash")
    return Receipt(
        remote_id=str(body.get("id") or index_no),
        url=str(body["url"]),
        state={"status": body.get("status")},
        content_hash=content_hash if isinstance(content_hash, str) else None,
    )
