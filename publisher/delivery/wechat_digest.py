"""The daily WeChat push digest (docs/protocols.md §5; issue 3).

A subscription account may mass-send once a day, so items flagged for push (`Item.push_tags`:
`[]` = every follower, `["101"]` = those tags) whose WeChat article is live are batched into one
digest per audience, at most 8 articles, sent at the configured time (18:00 Beijing by
default). What does not fit — a ninth article, a second audience once the day's quota is spent
— waits for the next day's digest. Each digest's `clientmsgid` is derived from its day, its
audience and its articles, so resending a digest whose answer was lost is deduplicated by WeChat
(45065 = already sent = success).

`run_daily_digest` owns its transactions, like the delivery engine: no transaction is open
while WeChat is called (see its docstring). A Celery beat task runs it every few minutes;
before the digest time, and once the day's sends are done, it sends nothing.

A send WeChat accepted is `sending` until its result: the `MASSSENDJOBFINISH` event
(`record_mass_result`, from the API's callback) or, when no event came within
`MASS_POLL_AFTER`, `message/mass/get` (`settle_sending`, at each run; a send under 群发保护
may stay SENDING for the 30 minutes an administrator has to confirm it). The result is `sent`,
`failed`, or `rejected` when an administrator refused it under 群发保护 — which only the
event tells (mass/get says SEND_FAIL for either); see the Batch_Sends page,
https://developers.weixin.qq.com/doc/service/guide/product/message/Batch_Sends.html. Each
item's WeChat delivery records where its pushed copy is (`mass_copies`: msg_id and
article_idx), so that retracting the item deletes that copy too (`WeChatChannel.delete`).

A retracted item is never pushed: just before a digest is recorded, and before an uncertain
one is resent, its items are checked to be still published and wanted on WeChat; a digest
with one that is not is not sent (a new one is made without it on the next run). A
retraction can still come while sendall is on its way: the copy WeChat then accepts is
recorded on the withdrawn delivery, which is made due again so that the engine deletes it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.base import Publication
from channels.errors import ChannelDisabled, ChannelError, OutcomeUnknown, Permanent, QuotaExhausted
from channels.wechat import BEIJING, WeChatChannel, digest_clientmsgid
from channels.wechat_push import MassSend
from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.publication import ChannelPool, build_publication, website_url_of
from publisher.dispatch import enqueue_after_commit
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

log = logging.getLogger(__name__)

DIGEST_MAX_ARTICLES = 8
DEFAULT_DIGEST_TIME = time(18, 0)
DEFAULT_MASS_QUOTA = 1  # a subscription account: one mass send a day
ALL_FOLLOWERS = "all"
# How long after sendall the MASSSENDJOBFINISH event may take before mass/get is asked.
MASS_POLL_AFTER = timedelta(minutes=10)
MASS_SENT = "send success"
# Under API 群发保护 (mass-send protection) a send to all followers waits for an administrator;
# refused, or not confirmed within 30 minutes, it fails (https://developers.weixin.qq.com/doc/
# service/api/notify/message/api_massmsgget: "如管理员拒绝或30分钟内没有确认，该次群发失败").
# The pages we read do not list the event's `Status` for those two; these are the codes we
# take for them (refused, lapsed). To be checked against a real account's first refusal: any
# other "err(…)" reads as failed.
MASS_REFUSED = frozenset({"err(30001)", "err(30002)"})
# message/mass/get's msg_status → our state (DELETE: it was sent, and deleted since).
MASS_STATUS_STATES = {
    "SEND_SUCCESS": WeChatDigestState.SENT,
    "DELETE": WeChatDigestState.SENT,
    "SEND_FAIL": WeChatDigestState.FAILED,
}


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
    """The beat job: run today's digest (nothing if WeChat is off)."""
    try:
        channel = pool.get("wechat")
    except ChannelDisabled:
        return DigestResult(day=datetime.now(BEIJING).date(), ran=False)
    assert isinstance(channel, WeChatChannel)
    result = run_daily_digest(
        database,
        channel=channel,
        settings=settings,
        now=datetime.now(BEIJING),
        **digest_options(settings),
    )
    for error in result.errors:
        log.warning("wechat digest: %s", error)
    return result


def run_daily_digest(
    database: Database,
    *,
    channel: WeChatChannel,
    settings: Settings,
    now: datetime,
    digest_time: time = DEFAULT_DIGEST_TIME,
    mass_quota: int = DEFAULT_MASS_QUOTA,
) -> DigestResult:
    """Send today's digests if it is time and today's quota allows.

    Like the delivery engine, this owns its transactions, because no transaction may be open
    while WeChat is called (on SQLite it holds the write lock, which the adapter's shared
    store needs for the token and the thumbs). Per digest: the batch is read and closed; the
    draft is made; one transaction records the digest as `unknown` with its clientmsgid and
    commits; the mass send goes out; another transaction records the outcome. A crash between
    leaves an `unknown` digest that the next run resends with the same clientmsgid.
    """
    local = now.astimezone(BEIJING)
    result = DigestResult(day=local.date())
    settle_sending(database, channel, now, result)
    if local.time() < digest_time:
        result.ran = False
        return result
    _resend_uncertain(database, channel, result)
    with database.session() as session:
        used = _sends_on(session, local.date())
        pending = _pending_by_audience(session, settings, result)
    for audience in sorted(pending, key=lambda a: (a != ALL_FOLLOWERS, a)):
        batch = pending[audience]
        if used >= mass_quota:
            result.waiting_item_ids.extend(entry.item_id for entry in batch)
            continue
        batch, rest = batch[:DIGEST_MAX_ARTICLES], batch[DIGEST_MAX_ARTICLES:]
        result.waiting_item_ids.extend(entry.item_id for entry in rest)
        outcome = _send_digest(database, channel, local.date(), audience, batch, result)
        if outcome == "stop":
            result.waiting_item_ids.extend(entry.item_id for entry in batch)
            used = mass_quota
        elif outcome == "used":
            used += 1
    return result


@dataclass(frozen=True)
class _Pending:
    """One item waiting for an audience's digest, read out of the store."""

    item_id: int
    article_id: str
    publication: Publication


@dataclass(frozen=True)
class _Recorded:
    """A digest row as plain values, to call WeChat with no session open."""

    digest_id: int
    day: date
    audience: str
    clientmsgid: str
    media_id: str
    msg_id: str | None
    item_ids: tuple[int, ...]


def mass_sends_left(session: Session, quota: int, now: datetime) -> int:
    """How many of today's `quota` mass sends (Beijing day) are left: the digests accepted,
    sending or of unknown outcome today count as used."""
    return max(0, quota - _sends_on(session, now.astimezone(BEIJING).date()))


def _sends_on(session: Session, day: date) -> int:
    """Today's mass sends: those WeChat accepted and those whose outcome is still unknown."""
    digests = session.scalars(
        select(WeChatDigest).where(
            WeChatDigest.day == day,
            WeChatDigest.state.in_(
                [WeChatDigestState.SENDING, WeChatDigestState.SENT, WeChatDigestState.UNKNOWN]
            ),
        )
    ).all()
    return len(digests)


def _pending_by_audience(
    session: Session, settings: Settings, result: DigestResult
) -> dict[str, list[_Pending]]:
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
    pending: dict[str, list[_Pending]] = defaultdict(list)
    for item, delivery in rows:
        audiences = [a for a in audiences_of(item.push_tags) if (item.id, a) not in done]
        if not audiences:
            continue
        try:
            pub = _publication(session, settings, item, delivery)
        except Permanent as exc:
            result.errors.append(f"item {item.id}: {exc}")
            continue
        entry = _Pending(item.id, delivery.remote_id or str(item.id), pub)
        for audience in audiences:
            pending[audience].append(entry)
    return pending


def _send_digest(
    database: Database,
    channel: WeChatChannel,
    day: date,
    audience: str,
    batch: list[_Pending],
    result: DigestResult,
) -> str:
    """Draft, record and send one digest. Returns "used" (a send spent), "stop" or "skipped"."""
    article_ids = [entry.article_id for entry in batch]
    clientmsgid = digest_clientmsgid(day.isoformat(), audience, article_ids)
    try:
        media_id = channel.create_digest_draft([entry.publication for entry in batch])
    except ChannelError as exc:
        result.errors.append(f"{audience}: the digest draft failed: {exc}")
        return "stop" if isinstance(exc, QuotaExhausted) else "skipped"
    # Recorded as uncertain and committed before the call, so that a crash mid-send is resent
    # with the same clientmsgid rather than forgotten.
    try:
        with database.session() as session:
            gone = _unwanted(session, [entry.item_id for entry in batch])
            if gone:  # retracted since the batch was read: made again without them next run
                result.errors.append(f"{audience}: not sent, items {gone} are no longer live")
                return "skipped"
            digest = WeChatDigest(
                day=day,
                audience=audience,
                clientmsgid=clientmsgid,
                media_id=media_id,
                state=WeChatDigestState.UNKNOWN,
            )
            digest.entries = [
                WeChatDigestEntry(
                    item_id=entry.item_id,
                    audience=audience,
                    position=i,
                    article_id=article_id,
                    article_idx=i + 1,
                )
                for i, (entry, article_id) in enumerate(zip(batch, article_ids, strict=True))
            ]
            session.add(digest)
            session.flush()
            recorded = _Recorded(
                digest.id,
                day,
                audience,
                clientmsgid,
                media_id,
                None,
                tuple(entry.item_id for entry in batch),
            )
    except IntegrityError:  # another run recorded this digest (or one of its items) meanwhile
        result.errors.append(f"{audience}: the digest was recorded by another run")
        return "skipped"
    outcome = _deliver(database, channel, recorded, result)
    return "stop" if outcome == "dropped" else "used"


def _deliver(
    database: Database, channel: WeChatChannel, digest: _Recorded, result: DigestResult
) -> str:
    """One sendall of a recorded digest, then its outcome recorded in its own transaction.

    Returns "sent", "unknown", "failed" or "dropped" (no quota: the digest is forgotten).
    """
    tag_id = None if digest.audience == ALL_FOLLOWERS else digest.audience.removeprefix("tag:")
    try:
        sent = channel.mass_send(digest.media_id, tag_id=tag_id, clientmsgid=digest.clientmsgid)
    except QuotaExhausted as exc:
        # Nothing went out: forget the digest so its items go in the next day's.
        result.errors.append(f"{digest.audience}: {exc}")
        _record(database, digest, None)
        return "dropped"
    except OutcomeUnknown as exc:
        result.errors.append(f"{digest.audience}: {exc}")
        _record(database, digest, WeChatDigestState.UNKNOWN, error=str(exc))
        return "unknown"
    except Permanent as exc:
        result.errors.append(f"{digest.audience}: {exc}")
        _record(database, digest, WeChatDigestState.FAILED, error=str(exc))
        return "failed"
    except ChannelError as exc:  # busy or token trouble: try again on the next run
        result.errors.append(f"{digest.audience}: {exc}")
        _record(database, digest, WeChatDigestState.UNKNOWN, error=str(exc))
        return "unknown"
    _record_accepted(database, digest, sent)
    result.sent.append(SentDigest(digest.audience, digest.item_ids, sent.msg_id, sent.duplicate))
    log.info(
        "wechat digest %s to %s: %d articles",
        digest.clientmsgid,
        digest.audience,
        len(digest.item_ids),
    )
    return "sent"


def _record(
    database: Database,
    digest: _Recorded,
    state: WeChatDigestState | None,
    *,
    error: str | None = None,
    result: str | None = None,
) -> None:
    """Write a digest's outcome (`state` None: delete it, nothing went out)."""
    with database.session() as session:
        row = session.get(WeChatDigest, digest.digest_id)
        if row is None:
            return
        if state is None:
            session.delete(row)
            return
        row.state, row.error = state, error
        if result is not None:
            _settle(session, row, state, result)


def _record_accepted(database: Database, digest: _Recorded, sent: MassSend) -> None:
    """WeChat took the job: the digest is sending, and each item's delivery learns where its
    pushed copy is (its msg_id and place), for a retraction to delete it."""
    with database.session() as session:
        row = session.get(WeChatDigest, digest.digest_id)
        if row is None:
            return
        row.state, row.error = WeChatDigestState.SENDING, None
        row.msg_id = sent.msg_id or row.msg_id
        row.msg_data_id = sent.msg_data_id or row.msg_data_id
        row.sent_at = utcnow()
        if row.msg_id:
            for entry in row.entries:
                copy = {"msg_id": row.msg_id, "article_idx": entry.article_idx}
                _change_copies(session, entry.item_id, add=copy)


def record_mass_result(session: Session, msg_id: str, status: str) -> int | None:
    """The MASSSENDJOBFINISH event of `msg_id` settles its digest (sent, failed, or rejected
    by an administrator); returns the digest's id, None when no digest sent it. A digest
    already settled keeps its result: the event may come twice."""
    row = session.scalars(select(WeChatDigest).where(WeChatDigest.msg_id == msg_id)).first()
    if row is None:
        return None
    if row.state in (WeChatDigestState.SENDING, WeChatDigestState.UNKNOWN):
        if status == MASS_SENT:
            state = WeChatDigestState.SENT
        elif status in MASS_REFUSED:
            state = WeChatDigestState.REJECTED
        else:
            state = WeChatDigestState.FAILED
        _settle(session, row, state, status)
    return row.id


def settle_sending(
    database: Database, channel: WeChatChannel, now: datetime, result: DigestResult
) -> None:
    """Ask `message/mass/get` about the sends whose event has not come in `MASS_POLL_AFTER`."""
    with database.session() as session:
        waiting = session.execute(
            select(WeChatDigest.id, WeChatDigest.msg_id).where(
                WeChatDigest.state == WeChatDigestState.SENDING,
                WeChatDigest.msg_id.is_not(None),
                WeChatDigest.sent_at <= now - MASS_POLL_AFTER,
            )
        ).all()
    for digest_id, msg_id in waiting:
        try:
            status = channel.mass_status(str(msg_id))
        except ChannelError as exc:
            result.errors.append(f"mass send {msg_id}: {exc}")
            continue
        state = MASS_STATUS_STATES.get(status)
        if state is None:  # SENDING still
            continue
        with database.session() as session:
            row = session.get(WeChatDigest, digest_id)
            if row is not None and row.state == WeChatDigestState.SENDING:
                _settle(session, row, state, status)


def _settle(session: Session, row: WeChatDigest, state: WeChatDigestState, result: str) -> None:
    """The digest's result; a send that did not go out has no pushed copies to delete."""
    row.state, row.result, row.finished_at = state, result, utcnow()
    if state != WeChatDigestState.SENT and row.msg_id:
        for entry in row.entries:
            _change_copies(session, entry.item_id, drop=row.msg_id)


def _change_copies(
    session: Session, item_id: int, *, add: dict[str, Any] | None = None, drop: str | None = None
) -> None:
    """Add a pushed copy to, or drop a message's copies from, the item's WeChat delivery.

    A copy added to a delivery being withdrawn goes with the withdrawal; to one already
    withdrawn (retracted while sendall was on its way), the delivery is made due again, with
    the copy as what it holds, so that the engine deletes it."""
    delivery = session.scalars(
        select(Delivery).where(Delivery.item_id == item_id, Delivery.channel_kind == "wechat")
    ).first()
    if delivery is None:
        return
    state = dict(delivery.remote_state or {})
    copies = [c for c in state.get("mass_copies") or [] if c != add and c["msg_id"] != drop]
    state["mass_copies"] = [*copies, add] if add else copies
    delivery.remote_state = state
    if add and not delivery.desired_present and delivery.state == DeliveryState.WITHDRAWN:
        delivery.remote_id = str(add["msg_id"])
        delivery.state, delivery.next_attempt_at = DeliveryState.PENDING, utcnow()
        delivery.explanation = "推送的副本在撤回之后才发出：删除该副本"
        enqueue_after_commit(session, [(delivery.id, delivery.channel_kind)])


def _unwanted(session: Session, item_ids: list[int]) -> list[int]:
    """Those of `item_ids` not to push: no longer published, or withdrawn from WeChat."""
    wanted = set(
        session.scalars(
            select(Item.id)
            .join(Delivery, Delivery.item_id == Item.id)
            .where(
                Item.id.in_(item_ids),
                Item.status == ItemStatus.PUBLISHED,
                Delivery.channel_kind == "wechat",
                Delivery.desired_present.is_(True),
            )
        )
    )
    return [item_id for item_id in item_ids if item_id not in wanted]


def _resend_uncertain(database: Database, channel: WeChatChannel, result: DigestResult) -> None:
    """Settle digests whose answer was lost: ask WeChat about a known msg_id, else resend
    with the same clientmsgid (WeChat dedupes it within 24 h: 45065 = already sent) — unless
    an item of it was retracted meanwhile: then the digest is dropped, and its other items go
    in a new one. (Had the lost send gone out, its copies stay: only a resend would tell
    their msg_id, and a send that had not gone out would push the retracted article.)"""
    horizon = result.day - timedelta(days=1)
    with database.session() as session:
        uncertain = [
            _Recorded(
                digest.id,
                digest.day,
                digest.audience,
                digest.clientmsgid,
                digest.media_id or "",
                digest.msg_id,
                tuple(entry.item_id for entry in digest.entries),
            )
            for digest in session.scalars(
                select(WeChatDigest).where(
                    WeChatDigest.state == WeChatDigestState.UNKNOWN, WeChatDigest.day >= horizon
                )
            ).all()
        ]
    for digest in uncertain:
        if digest.msg_id:
            try:
                status = channel.mass_status(digest.msg_id)
            except ChannelError as exc:
                result.errors.append(f"{digest.audience}: {exc}")
                continue
            if status != "SEND_FAIL":
                state = MASS_STATUS_STATES.get(status)
                if state is not None:
                    _record(database, digest, state, result=status)
                continue
        if not _dropped_if_unwanted(database, digest, result):
            _deliver(database, channel, digest, result)


def _dropped_if_unwanted(database: Database, digest: _Recorded, result: DigestResult) -> bool:
    """Forget `digest` (its items wait for the next one) if an item of it is not to push."""
    with database.session() as session:
        gone = _unwanted(session, list(digest.item_ids))
    if gone:
        result.errors.append(f"{digest.audience}: not resent, items {gone} are no longer live")
        _record(database, digest, None)
    return bool(gone)


def _publication(
    session: Session, settings: Settings, item: Item, delivery: Delivery
) -> Publication:
    """The publication of the revision live on WeChat, linking to its website page."""
    revision_id = delivery.applied_revision_id or delivery.desired_revision_id
    revision = session.get(Revision, revision_id) if revision_id else None
    if revision is None:
        raise Permanent(f"wechat: item {item.id} has no revision live on WeChat")
    website_url = website_url_of(session, item.id)
    return build_publication(settings, item, revision, website_url)
