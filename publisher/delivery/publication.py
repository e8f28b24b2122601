"""What a channel sees: a `Publication` built from an item's revision, the adapter pool, and
the channels' objections before anything is sent (preflight).

Services (preview, checked publish) and the engine both use this; it imports no engine."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, literal, select
from sqlalchemy.orm import Session, lazyload

from channels.base import Channel, Publication, SharedStore
from channels.errors import ChannelDisabled
from channels.registry import KINDS
from publisher.channel_config import build_channel
from publisher.config import Settings
from publisher.errors import NotFound
from publisher.i18n import t
from publisher.models import (
    Delivery,
    Domain,
    Item,
    Revision,
)

log = logging.getLogger(__name__)


def build_publication(
    settings: Settings,
    item: Item,
    rev: Revision,
    website_url: str | None,
) -> Publication:
    tz = ZoneInfo(settings.timezone)
    published = (item.published_at or datetime.now(UTC)).astimezone(tz).date()
    return Publication(
        item_id=item.id,
        revision_id=rev.id,
        revision_number=rev.number,
        external_id=f"item-{item.id}",
        title=rev.title,
        short_title=rev.short_title,
        short_titles=dict(rev.short_titles or {}),
        wechat_digest=rev.wechat_digest,
        summary=rev.summary or "",
        body_html=_MEDIA_LINK.sub(
            lambda m: m.group(1) + (absolute_media_url(settings, m.group(2)) or ""), rev.body_html
        ),
        domain_code=item.domain_code,
        domain_name=item.domain.name,
        catecode=item.domain.catecode,
        department_code=item.department_code,
        department_name=item.department.name,
        org_code=settings.org_code,
        index_no=item.index_no or "",
        written_date=rev.formed_on,
        publish_date=published,
        content_hash=rev.content_hash,
        doc_no=rev.doc_number,
        keywords=tuple(rev.keywords or ()),
        cover_image_url=absolute_media_url(settings, rev.cover_image),
        website_url=website_url,
        push_tags=None if item.push_tags is None else tuple(item.push_tags),
    )


# Our own uploads are linked as "/media/<sha256>"; channels fetch them from our public URL.
_MEDIA_LINK = re.compile(r'((?:src|href)=")(/media/[0-9a-f]{64})')


def absolute_media_url(settings: Settings, url: str | None) -> str | None:
    if url and url.startswith("/"):
        return settings.media_base_url().rstrip("/") + url
    return url


def website_url_of(session: Session, item_id: int) -> str | None:
    return session.scalars(
        select(Delivery.remote_url).where(
            Delivery.item_id == item_id,
            Delivery.channel_kind == "website",
            Delivery.desired_present.is_(True),
        )
    ).first()


class ChannelPool:
    """Adapters built once per process. A disabled channel remembers why for a short while
    (`DISABLED_TTL`), so that configuration given at run time is picked up without a restart."""

    DISABLED_TTL = 30.0

    def __init__(self, settings: Settings, shared: SharedStore) -> None:
        self.settings = settings
        self.shared = shared
        self._channels: dict[str, Channel | ChannelDisabled] = {}
        self._disabled_at: dict[str, float] = {}

    def get(self, kind: str) -> Channel:
        cached = self._channels.get(kind)
        if isinstance(cached, ChannelDisabled) and (
            time.monotonic() - self._disabled_at.get(kind, 0.0) > self.DISABLED_TTL
        ):
            del self._channels[kind]
        if kind not in self._channels:
            try:
                self._channels[kind] = build_channel(kind, self.settings, self.shared)
            except ChannelDisabled as exc:
                self._channels[kind] = exc
            except ImportError as exc:  # a broken or missing adapter disables its channel only
                self._channels[kind] = ChannelDisabled(f"{kind}: adapter not available ({exc})")
            self._disabled_at[kind] = time.monotonic()
        found = self._channels[kind]
        if isinstance(found, ChannelDisabled):
            raise found
        return found

    def forget(self, kind: str) -> None:
        """Build `kind` again on next use (its configuration changed)."""
        self._channels.pop(kind, None)

    def disabled_reason(self, kind: str) -> str | None:
        try:
            self.get(kind)
        except ChannelDisabled as exc:
            return str(exc)
        return None


def preflight(pool: ChannelPool, pubs: dict[str, Publication]) -> list[Any]:
    """Every channel's objections to its publication, before anything is sent."""
    problems: list[Any] = []
    for kind, pub in pubs.items():
        try:
            channel = pool.get(kind)
        except ChannelDisabled:
            continue
        problems.extend(channel.preflight(pub))
    return problems


def with_website_estimate(pub: Publication, settings: Settings) -> Publication:
    """`pub` with a stand-in website URL of the right shape, for preflight length checks."""
    if pub.website_url:
        return pub
    base = (settings.website_api_base or "https://www.example.gov.cn").rstrip("/")
    return replace(pub, website_url=f"{base}/articles/{pub.external_id}.html")


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise NotFound(
            f"unknown channel {kind!r}; known: {', '.join(KINDS)}",
            zh=t("refusal.no_channel", kind=kind, choices="、".join(KINDS)),
        )


class PlanReads:
    """What planning one delivery reads, each at most once: its item (with domain and
    department), a revision and the website page's URL, together in one query."""

    def __init__(self, session: Session, settings: Settings, delivery: Delivery) -> None:
        self.session = session
        self.settings = settings
        self.delivery = delivery
        self._item: Item | None = None
        self._revisions: dict[int, Revision] = {}
        self._url: str | None = None

    def _load(self, revision_id: int | None) -> Item:
        if self._item is not None:
            return self._item
        delivery = self.delivery
        link = (
            literal(delivery.remote_url, String)
            if delivery.channel_kind == "website"
            else select(Delivery.remote_url)
            .where(
                Delivery.item_id == delivery.item_id,
                Delivery.channel_kind == "website",
                Delivery.desired_present.is_(True),
            )
            .scalar_subquery()
        )
        item, rev, self._url = self.session.execute(
            select(Item, Revision, link)
            .outerjoin(Revision, (Revision.item_id == Item.id) & (Revision.id == revision_id))
            .where(Item.id == delivery.item_id)
            .options(lazyload(Item.domain, Domain.departments))
        ).one()
        if rev is not None:
            self._revisions[rev.id] = rev
        self._item = item
        return item

    def item(self) -> Item:
        return self._load(self.delivery.desired_revision_id)

    def website_url(self) -> str | None:
        self._load(self.delivery.desired_revision_id)
        return self._url

    def publication(self, revision_id: int | None) -> Publication | None:
        if revision_id is None:
            return None
        item = self._load(revision_id)
        rev = self._revisions.get(revision_id) or self.session.get(Revision, revision_id)
        assert rev is not None
        return build_publication(self.settings, item, rev, self._url)
