"""The WeChat push digests as operators see them: per day and audience, what WeChat did with
each mass send (sending, sent, failed, rejected under 群发保护, unknown) and which items it
carried at which place. One read model for `GET /wechat/digests` and `publisher wechat
digests`; how digests are sent and settled is `publisher.delivery.wechat_digest`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.models import WeChatDigest
from publisher.services.queries import Page


@dataclass(frozen=True)
class DigestItem:
    item_id: int
    article_idx: int | None  # its place in the mass-sent message, from 1


@dataclass(frozen=True)
class DigestView:
    """One mass send to one audience ("all", or "tag:<id>"); `result` is WeChat's own word
    for it (MASSSENDJOBFINISH's Status, or mass/get's msg_status)."""

    id: int
    day: date
    audience: str
    state: str
    msg_id: str | None
    result: str | None
    error: str | None
    sent_at: datetime | None
    finished_at: datetime | None
    items: list[DigestItem]


def digest_views(session: Session, *, day: date | None, paging: Page) -> list[DigestView]:
    """The digests of `day` (every day when None), newest first."""
    query = select(WeChatDigest).order_by(WeChatDigest.day.desc(), WeChatDigest.id.desc())
    if day is not None:
        query = query.where(WeChatDigest.day == day)
    rows = session.scalars(query.limit(paging.limit).offset(paging.offset)).all()
    return [
        DigestView(
            id=row.id,
            day=row.day,
            audience=row.audience,
            state=row.state.value,
            msg_id=row.msg_id,
            result=row.result,
            error=row.error,
            sent_at=row.sent_at,
            finished_at=row.finished_at,
            items=[DigestItem(e.item_id, e.article_idx) for e in row.entries],
        )
        for row in rows
    ]
