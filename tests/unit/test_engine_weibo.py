"""Weibo through the delivery engine: pacing defers (never fails), and an expired token waits
for an operator's new one. Real website and Weibo sandboxes, the real embedded store."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete, func, select

from publisher.models import Attempt, Delivery, DeliveryState, SharedValue
from publisher.models import Channel as ChannelRow
from publisher.services.channel_controls import credentials_renewed, store_credentials
from publisher.services.items import create_item, retract_item
from tests.outbound import body, png, recording_server
from tests.support import (
    RunningSandbox,
    housing_notice,
    make_due,
    migrated_sqlite,
    publish_reviewed,
    running_sandbox,
    sandbox_engine,
    sandbox_settings,
)

WINDOW = 6.0


class Weibo:
    def __init__(self, tmp: Path, website: RunningSandbox, weibo: RunningSandbox) -> None:
        self.weibo = weibo
        self.settings = sandbox_settings(
            tmp,
            migrated_sqlite(tmp),
            website,
            weibo,
            weibo_posts_per_hour=30,
            weibo_rate_window_seconds=WINDOW,
            http_timeout_seconds=2,
        )
        self.engine = sandbox_engine(self.settings)
        self.db = self.engine.database
        self.shared = self.engine.pool.shared
        # Weibo's own limit is the account's; ours must act first, so the sandbox allows more.
        requests.post(f"{weibo.url}/_sandbox/weibo/config", json={"rate_limit": 1000}, timeout=5)

    def publish(self, n: int) -> int:
        fields = housing_notice(n)
        with self.db.session() as session:
            item_id = create_item(session, self.settings, fields, actor="t").id
            publish_reviewed(session, self.settings, item_id, enabled_kinds=[])
        return item_id

    def ids(self, kind: str, state: DeliveryState | None = None) -> list[int]:
        stmt = select(Delivery.id).where(Delivery.channel_kind == kind)
        if state is not None:
            stmt = stmt.where(Delivery.state == state)
        with self.db.session() as session:
            return list(session.scalars(stmt.order_by(Delivery.id)))

    def sync(self, delivery_id: int, *, force: bool = False) -> DeliveryState | None:
        if force:
            make_due(self.db, delivery_id)
        return self.engine.sync(delivery_id, "test-worker").state

    def delivery(self, delivery_id: int) -> Delivery:
        with self.db.session() as session:
            d = session.get(Delivery, delivery_id)
            assert d is not None
            session.expunge(d)
            return d

    def live_posts(self) -> list[str]:
        statuses = self.weibo.inspect()["records"]["statuses"].values()
        return [s["text"] for s in statuses if not s["deleted"]]


@pytest.fixture
def world(tmp_path: Path, dispatched: list[tuple[int, str, float]]) -> Iterator[Weibo]:
    with running_sandbox("website") as website, running_sandbox("weibo") as weibo:
        made = Weibo(tmp_path, website, weibo)
        yield made
        made.db.dispose()


def test_35_posts_with_a_limit_of_30_go_30_now_and_5_after_the_window(world: Weibo) -> None:
    items = [world.publish(n) for n in range(1, 36)]
    for delivery_id in world.ids("website"):
        assert world.sync(delivery_id) == DeliveryState.LIVE
    time.sleep(math.ceil(time.time() / WINDOW) * WINDOW - time.time() + 0.05)  # a fresh window

    states = [world.sync(delivery_id) for delivery_id in world.ids("weibo")]

    assert states.count(DeliveryState.LIVE) == 30
    assert states.count(DeliveryState.DEFERRED) == 5
    window_end = math.ceil(time.time() / WINDOW) * WINDOW
    for delivery_id in world.ids("weibo", DeliveryState.DEFERRED):
        d = world.delivery(delivery_id)
        assert abs(d.next_attempt_at.timestamp() - window_end) < 1.5
        assert d.explanation and "waits until" in d.explanation
        assert not world.engine.sync(delivery_id, "w2").claimed  # not due: not even tried

    time.sleep(window_end - time.time() + 0.1)
    for delivery_id in world.ids("weibo", DeliveryState.DEFERRED):
        assert world.sync(delivery_id) == DeliveryState.LIVE
    assert world.ids("weibo", DeliveryState.FAILED) == []
    posts = world.live_posts()
    assert len(posts) == 35
    for item_id in items:  # each item's link in exactly one post
        assert sum(f"/articles/item-{item_id}.html" in text for text in posts) == 1


def test_an_expired_token_waits_for_the_operator_and_a_new_token_resumes(world: Weibo) -> None:
    world.publish(1)
    website, weibo = world.ids("website")[0], world.ids("weibo")[0]
    assert world.sync(website) == DeliveryState.LIVE
    requests.post(f"{world.weibo.url}/_sandbox/weibo/expire-token", timeout=5)

    assert world.sync(weibo) == DeliveryState.DEFERRED
    d = world.delivery(weibo)
    assert d.last_error_code == "21327" and d.last_error_message == "expired_token"
    with world.db.session() as session:
        row = session.get(ChannelRow, "weibo")
        assert row is not None and row.needs_reauth and "21327" in (row.reauth_reason or "")
        attempts = session.scalar(
            select(func.count(Attempt.id)).where(Attempt.delivery_id == weibo)
        )
    assert world.sync(weibo, force=True) == DeliveryState.DEFERRED  # waits: no call, no loop
    with world.db.session() as session:
        assert (
            session.scalar(select(func.count(Attempt.id)).where(Attempt.delivery_id == weibo))
            == attempts
        )

    requests.post(f"{world.weibo.url}/_sandbox/weibo/token", json={"token": "renewed"}, timeout=5)
    store_credentials(world.shared, "weibo", "renewed")
    with world.db.session() as session:
        assert credentials_renewed(session, "weibo", actor="operator") == 1

    assert world.sync(weibo) == DeliveryState.LIVE
    assert len(world.live_posts()) == 1


def test_a_cover_on_an_internal_address_fails_the_item_and_leaves_the_breaker_alone(
    world: Weibo,
) -> None:
    world.settings.breaker_threshold = 1  # a single failure counted would open it
    with recording_server({"/x.png": body(png())}) as internal:
        cover = f"{internal.url}/x.png"
        with world.db.session() as session:
            fields = replace(housing_notice(1), cover_image=cover)
            item_id = create_item(session, world.settings, fields, actor="t").id
            publish_reviewed(session, world.settings, item_id, enabled_kinds=[])
        world.publish(2)
        website, weibo = world.ids("website"), world.ids("weibo")
        assert [world.sync(d) for d in website] == [DeliveryState.LIVE] * 2

        assert world.sync(weibo[0]) == DeliveryState.FAILED
        assert world.sync(weibo[1]) == DeliveryState.LIVE  # the channel is not held
        assert internal.received == []

    failed = world.delivery(weibo[0])
    assert failed.last_error_kind == "permanent" and failed.last_error_message is None
    assert failed.explanation == f"weibo: 封面图片 {cover}：地址指向内部网络，不予下载"
    with world.db.session() as session:
        row = session.get(ChannelRow, "weibo")
        assert row is not None and row.breaker_failures == 0 and row.breaker_open_until is None
        attempt = session.scalars(select(Attempt).where(Attempt.delivery_id == weibo[0])).one()
        assert attempt.outcome == "failed" and attempt.error_message is None
        assert attempt.explanation == failed.explanation  # what editors read in the attempts
    assert len(world.live_posts()) == 1


def _live_website(world: Weibo) -> None:
    for delivery_id in world.ids("website"):
        if world.delivery(delivery_id).state != DeliveryState.LIVE:
            assert world.sync(delivery_id) == DeliveryState.LIVE


def test_posted_but_answered_20032_ends_live_once(world: Weibo) -> None:
    world.publish(1)
    _live_website(world)
    [weibo] = world.ids("weibo")
    requests.post(f"{world.weibo.url}/_sandbox/weibo/config", json={"slow_posts": 1}, timeout=5)

    assert world.sync(weibo) == DeliveryState.UNKNOWN  # posted, but Weibo answered 20032
    assert world.delivery(weibo).last_error_code == "20032"
    assert world.sync(weibo, force=True) == DeliveryState.LIVE  # looked up, not posted again

    assert len(world.live_posts()) == 1
    assert world.weibo.inspect()["counters"]["statuses_created"] == 1
    assert world.delivery(weibo).remote_id is not None


def test_a_lost_post_that_scrolled_off_the_timeline_is_never_posted_again(world: Weibo) -> None:
    world.publish(1)
    _live_website(world)
    [lost] = world.ids("weibo")
    world.weibo.faults(timeout_next_writes=1, hang_seconds=3)
    assert world.sync(lost) == DeliveryState.UNKNOWN
    for n in range(2, 8):  # six newer posts: the sandbox's timeline shows the newest five
        world.publish(n)
    _live_website(world)
    for delivery_id in world.ids("weibo")[1:]:
        assert world.sync(delivery_id) == DeliveryState.LIVE

    assert world.sync(lost, force=True) == DeliveryState.UNKNOWN  # not found: still unknown
    calls = world.weibo.inspect()["counters"]["calls"]
    for _ in range(5):  # the engine's retries within the hour: no search, no call
        assert world.sync(lost, force=True) == DeliveryState.UNKNOWN
    assert world.weibo.inspect()["counters"]["calls"] == calls

    posts = world.live_posts()
    assert len(posts) == 7 == world.weibo.inspect()["counters"]["statuses_created"]
    assert sum("/articles/" in text and "第1批" in text for text in posts) == 1
    d = world.delivery(lost)
    assert d.remote_id is None and d.explanation and "暂不重发" in d.explanation
    assert "每小时最多查找一次" in d.explanation


def test_a_lost_post_whose_note_the_shared_store_lost_is_not_taken_for_gone(world: Weibo) -> None:
    """The note of an unanswered share lives in the shared store, which may be flushed; the
    delivery keeps it too, so a retraction never takes a post that scrolled off for gone."""
    item_id = world.publish(1)
    _live_website(world)
    [lost] = world.ids("weibo")
    world.weibo.faults(timeout_next_writes=1, hang_seconds=3)
    assert world.sync(lost) == DeliveryState.UNKNOWN
    with world.engine.pool.shared.database.session() as session:  # Redis flushed, as it were
        session.execute(delete(SharedValue).where(SharedValue.key.like("weibo:%")))
    for n in range(2, 8):  # the lost post scrolls off the sandbox's five-post timeline
        world.publish(n)
    _live_website(world)
    for delivery_id in world.ids("weibo")[1:]:
        assert world.sync(delivery_id) == DeliveryState.LIVE
    with world.db.session() as session:
        retract_item(session, item_id, actor="t")

    assert world.sync(lost, force=True) == DeliveryState.UNKNOWN, "never withdrawn unseen"
    assert sum("第1批" in text for text in world.live_posts()) == 1
