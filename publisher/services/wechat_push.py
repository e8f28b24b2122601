"""The daily WeChat push digest (DESIGN §5.1; issue 3).

A subscription account may mass-send once a day, so items flagged for push (`Item.push_tags`:
`[]` = every follower, `["101"]` = those tags) whose WeChat article is live are batched into one
digest per audience, at most 8 articles, sent at the configured time (18:00 Beijing by
default). What does not fit — a ninth article, a second audience once the day's quota is spent
— waits for the next day's digest. Each digest's `clientmsgid` is derived from its day, its
audience and its articles, so resending a digest whose answer was lost is deduplicated by WeChat
(45065 = already sent = success).

`run_daily_digest` never commits: the caller (a Celery beat task) owns the transaction and
should run it every few minutes; before the digest time, and once the day's sends are done,
it does nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.base import Publication
from channels.errors import ChannelError, OutcomeUnknown, Permanent, QuotaExhausted
from channels.registry import ChannelDisabled
from channels.wechat import BEIJING, WeChatChannel, digest_clientmsgid
from publisher.config import Settings
from publisher.db import Database
from publisher.models import (
    Delivery,
    DeliveryState,
    Item,
    ItemStatus,
    Revision,
    WeChatDigest,
    WeChatDigestEntry,
    WeChatDigestState,
    utcnow,
)
from publisher.services.deliveries import ChannelPool, build_publication, website_url_of

log = logging.getLogger(__name__)

DIGEST_MAX_ARTICLES = 8
DEFAULT_DIGEST_TIME = time(18, 0)
DEFAULT_MASS_QUOTA = 1  # a subscription account: one mass send a day
ALL_FOLLOWERS = "all"


@dataclass(frozen=True)
class SentDigest:
    audience: str
    item_ids: tuple[int, ...]
    msg_id: str | None
    duplicate: bool


@dataclass
class DigestResult:
    """What one run did: digests sent, items left for a later day, and why anything stopped."""

    day: date
    sent: list[SentDigest] = field(default_factory=list)
    waiting_item_ids: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ran: bool = True


def digest_options(settings: Settings) -> dict[str, Any]:
    """`run_daily_digest` keyword arguments from the settings (`wechat_digest_time` "HH:MM")."""
    hours, _, minutes = settings.wechat_digest_time.partition(":")
    return {
        "digest_time": time(int(hours), int(minutes or 0)),
        "mass_quota": settings.wechat_mass_quota,
    }


def audiences_of(push_tags: list[str] | None) -> list[str]:
    """The audiences an item is pushed to: "all", or one "tag:<id>" per tag."""
    if push_tags is None:
        return []
    if not push_tags:
        return [ALL_FOLLOWERS]
    return [f"tag:{tag}" for tag in dict.fromkeys(push_tags)]


def scheduled_wechat_digest(
    database: Database, settings: Settings, pool: ChannelPool
) -> DigestResult:
    """The beat job: run today's digest in its own transaction (nothing if WeChat is off)."""
    try:
        channel = pool.get("wechat")
    except ChannelDisabled:
        return DigestResult(day=datetime.now(BEIJING).date(), ran=False)
    assert isinstance(channel, WeChatChannel)
    with database.session() as session:
        result = run_daily_digest(
            session,
            channel=channel,
            settings=settings,
            now=datetime.now(BEIJING),
            **digest_options(settings),
        )
    for error in result.errors:
        log.warning("wechat digest: %s", error)
    return result


def run_daily_digest(
    session: Session,
    *,
    channel: WeChatChannel,
    settings: Settings,
    now: datetime,
    digest_time: time = DEFAULT_DIGEST_TIME,
    mass_quota: int = DEFAULT_MASS_QUOTA,
) -> DigestResult:
    """Send today's digests if it is time and today's quota allows. Never commits."""
    local = now.astimezone(BEIJING)
    result = DigestResult(day=local.date())
    if local.time() < digest_time:
        result.ran = False
        return result
    used = _resend_uncertain(session, channel, result)
    used += _sends_on(session, local.date())
    pending = _pending_by_audience(session)
    for audience in sorted(pending, key=lambda a: (a != ALL_FOLLOWERS, a)):
        rows = pending[audience]
        if used >= mass_quota:
            result.waiting_item_ids.extend(item.id for item, _ in rows)
            continue
        batch, rest = rows[:DIGEST_MAX_ARTICLES], rows[DIGEST_MAX_ARTICLES:]
        result.waiting_item_ids.extend(item.id for item, _ in rest)
        outcome = _send_digest(session, settings, channel, local.date(), audience, batch, result)
        if outcome == "stop":
            result.waiting_item_ids.extend(item.id for item, _ in batch)
            used = mass_quota
        elif outcome == "used":
            used += 1
    session.flush()
    return result


def _sends_on(session: Session, day: date) -> int:
    digests = session.scalars(
        select(WeChatDigest).where(
            WeChatDigest.day == day, WeChatDigest.state == WeChatDigestState.SENT
        )
    ).all()
    return len(digests)


def _pending_by_audience(session: Session) -> dict[str, list[tuple[Item, Delivery]]]:
    """Pushable items with a live WeChat article, not yet in a digest for each audience."""
    rows = session.execute(
        select(Item, Delivery)
        .join(Delivery, Delivery.item_id == Item.id)
        .where(
            Delivery.channel_kind == "wechat",
            Delivery.state == DeliveryState.LIVE,
            Item.status == ItemStatus.PUBLISHED,
        )
        .order_by(Delivery.live_at, Item.id)
    ).all()
    done = set(session.execute(select(WeChatDigestEntry.item_id, WeChatDigestEntry.audience)))
    pending: dict[str, list[tuple[Item, Delivery]]] = defaultdict(list)
    for item, delivery in rows:
        for audience in audiences_of(item.push_tags):
            if (item.id, audience) not in done:
                pending[audience].append((item, delivery))
    return pending


def _send_digest(
    session: Session,
    settings: Settings,
    channel: WeChatChannel,
    day: date,
    audience: str,
    batch: list[tuple[Item, Delivery]],
    result: DigestResult,
) -> str:
    """Draft and send one digest. Returns "used" (a send spent), "stop" or "skipped"."""
    article_ids = [delivery.remote_id or str(item.id) for item, delivery in batch]
    clientmsgid = digest_clientmsgid(day.isoformat(), audience, article_ids)
    try:
        pubs = [_publication(session, settings, item, delivery) for item, delivery in batch]
        media_id = channel.create_digest_draft(pubs)
    except ChannelError as exc:
        result.errors.append(f"{audience}: the digest draft failed: {exc}")
        return "stop" if isinstance(exc, QuotaExhausted) else "skipped"
    digest = WeChatDigest(
        day=day,
        audience=audience,
        clientmsgid=clientmsgid,
        media_id=media_id,
        state=WeChatDigestState.UNKNOWN,
    )
    digest.entries = [
        WeChatDigestEntry(item_id=item.id, audience=audience, position=i, article_id=article_id)
        for i, ((item, _), article_id) in enumerate(zip(batch, article_ids, strict=True))
    ]
    session.add(digest)
    # The digest is recorded as uncertain before the call, so a crash mid-send is resent
    # with the same clientmsgid rather than forgotten.
    session.flush()
    outcome = _deliver(session, channel, digest, result)
    if outcome == "dropped":
        return "stop"
    return "used"


def _deliver(
    session: Session, channel: WeChatChannel, digest: WeChatDigest, result: DigestResult
) -> str:
    """One sendall of a recorded digest: "sent", "unknown", "failed" or "dropped" (no quota)."""
    tag_id = None if digest.audience == ALL_FOLLOWERS else digest.audience.removeprefix("tag:")
    item_ids = tuple(entry.item_id for entry in digest.entries)
    try:
        sent = channel.mass_send(
            digest.media_id or "", tag_id=tag_id, clientmsgid=digest.clientmsgid
        )
    except QuotaExhausted as exc:
        # Nothing went out: forget the digest so its items go in the next day's.
        result.errors.append(f"{digest.audience}: {exc}")
        session.delete(digest)
        session.flush()
        return "dropped"
    except OutcomeUnknown as exc:
        digest.state, digest.error = WeChatDigestState.UNKNOWN, str(exc)
        result.errors.append(f"{digest.audience}: {exc}")
        return "unknown"
    except Permanent as exc:
        digest.state, digest.error = WeChatDigestState.FAILED, str(exc)
        result.errors.append(f"{digest.audience}: {exc}")
        return "failed"
    except ChannelError as exc:  # busy or token trouble: try again on the next run
        digest.error = str(exc)
        result.errors.append(f"{digest.audience}: {exc}")
        return "unknown"
    digest.state, digest.msg_id, digest.error = WeChatDigestState.SENT, sent.msg_id, None
    digest.sent_at = utcnow()
    result.sent.append(SentDigest(digest.audience, item_ids, sent.msg_id, sent.duplicate))
    log.info(
        "wechat digest %s to %s: %d articles", digest.clientmsgid, digest.audience, len(item_ids)
    )
    return "sent"


def _resend_uncertain(session: Session, channel: WeChatChannel, result: DigestResult) -> int:
    """Resend digests whose answer was lost (WeChat dedupes by clientmsgid within 24 h).

    Returns how many of today's sends they account for.
    """
    used = 0
    horizon = result.day - timedelta(days=1)
    uncertain = session.scalars(
        select(WeChatDigest).where(
            WeChatDigest.state == WeChatDigestState.UNKNOWN, WeChatDigest.day >= horizon
        )
    ).all()
    for digest in uncertain:
        if digest.msg_id:
            try:
                status = channel.mass_status(digest.msg_id)
            except ChannelError as exc:
                result.errors.append(f"{digest.audience}: {exc}")
                continue
            if status != "SEND_FAIL":
                digest.state = WeChatDigestState.SENT
                continue
        if _deliver(session, channel, digest, result) == "sent" and digest.day == result.day:
            used += 1
    return used


def _publication(
    session: Session, settings: Settings, item: Item, delivery: Delivery
) -> Publication:
    """The publication of the revision live on WeChat, linking to its website page."""
    revision_id = delivery.applied_revision_id or delivery.desired_revision_id
    revision = session.get(Revision, revision_id) if revision_id else None
    if revision is None:
        raise Permanent(f"wechat: item {item.id} has no revision live on WeChat")
    website_url = website_url_of(session, item.id)
    return build_publication(session, settings, item, revision, website_url)
