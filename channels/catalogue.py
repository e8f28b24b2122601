"""The Dongguan open-government catalogue channel (docs/protocols.md §3, a stable protocol).

    PUT    {base}/api/catalogue/{index_no}   upsert → 201/200 {id, url, status}
    GET    {base}/api/catalogue/{index_no}   → 200 the entry / 404
    DELETE {base}/api/catalogue/{index_no}   → 204 revoked (撤销) / 404 absent

`index_no` is `{org_code}/{year}-{serial:05d}`; its slash stays a path separator. The entry's
原文链接 is the website article, so this channel waits for it (`needs_website_url`); a
publication without it is sent as is and refused by the catalogue (`Permanent`). The
receipt's url is the catalogue's public entry page. The signed upsert itself is
`channels.signed_upsert`.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from channels.base import Problem, Publication
from channels.signed_upsert import SignedUpsertChannel

SUMMARY_MAX_CHARS = 2000


class CatalogueChannel(SignedUpsertChannel):
    kind: ClassVar[str] = "catalogue"
    title: ClassVar[str] = "东莞市政府信息公开目录"
    needs_website_url: ClassVar[bool] = True
    title_label: ClassVar[str] = "名称"

    def key_of(self, pub: Publication) -> str:
        return pub.index_no

    def path_for(self, key: str) -> str:
        # The slash between org code and serial is part of the protocol's path.
        return f"/api/catalogue/{quote(key, safe='/')}"

    def payload(self, pub: Publication) -> dict[str, Any]:
        return entry_payload(pub)

    def more_problems(self, pub: Publication) -> list[Problem]:
        if len(pub.summary) > SUMMARY_MAX_CHARS:
            message = f"内容概述不能超过{SUMMARY_MAX_CHARS}字"
            return [
                Problem(self.kind, "summary", "max_length", message, {"limit": SUMMARY_MAX_CHARS})
            ]
        return []


def entry_payload(pub: Publication) -> dict[str, Any]:
    """The catalogue entry of docs/protocols.md §3 (政府信息公开条例 Art. 12 fields)."""
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
