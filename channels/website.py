"""The official website CMS channel (docs/protocols.md §2, a stable protocol).

    PUT    {base}/api/articles/{external_id}   upsert → 201/200 {id, url, status}
    GET    {base}/api/articles/{external_id}   → 200 the article / 404
    DELETE {base}/api/articles/{external_id}   → 204 withdrawn / 404 absent

The signed upsert itself (signature, receipts, auth errors) is `channels.signed_upsert`.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from channels.base import Problem, Publication
from channels.signed_upsert import SignedUpsertChannel

BODY_MAX_BYTES = 1_000_000


class WebsiteChannel(SignedUpsertChannel):
    kind: ClassVar[str] = "website"
    title: ClassVar[str] = "松山湖官方网站"

    def key_of(self, pub: Publication) -> str:
        return pub.external_id

    def path_for(self, key: str) -> str:
        return f"/api/articles/{quote(key, safe='')}"

    def payload(self, pub: Publication) -> dict[str, Any]:
        return article_payload(pub)

    def more_problems(self, pub: Publication) -> list[Problem]:
        if len(pub.body_html.encode()) > BODY_MAX_BYTES:
            message = "正文不能超过1MB"
            return [
                Problem(self.kind, "body_html", "max_bytes", message, {"limit": BODY_MAX_BYTES})
            ]
        return []


def article_payload(pub: Publication) -> dict[str, Any]:
    """The article body of docs/protocols.md §2; dates as ISO strings."""
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
