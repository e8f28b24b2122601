"""The delivery engine against the website and catalogue sandboxes, without Celery.

Each test drives `DeliveryEngine.sync` directly, as a worker would, and checks both the store
(delivery state, attempt rows) and the sandboxes (what the public actually sees).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, update

from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.claims import claim_delivery, due_deliveries
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.ops import retry_failed
from publisher.models import (
    Attempt,
    AttemptOutcome,
    AuditEvent,
    Delivery,
    DeliveryState,
    utcnow,
)
from publisher.models import Channel as ChannelRow
from publisher.services.freeze import lift_freeze, start_freeze
from publisher.services.items import (
    ItemFields,
    create_item,
    edit_item,
    retract_item,
)
from tests.support import (
    RunningSandbox,
    item_delivery,
    item_fields,
    make_due,
    migrated_sqlite,
    publish_reviewed,
    running_sandbox,
    sandbox_engine,
    sandbox_settings,
)

CHANNELS = ["website", "catalogue"]


@dataclass
class World:
    settings: Settings
    db: Database
    engine: DeliveryEngine
    website: RunningSandbox
    catalogue: RunningSandbox
    sent: list[tuple[int, str, float]]  # what commits handed to the workers

    @contextmanager
    def slow_website_sync(
        self, item_id: int, *, latency_ms: int = 700, pause: float = 0.3
    ) -> Iterator[int]:
        """ "slow-worker" syncs the item's website delivery in a thread, each website call
        taking `latency_ms`; the body runs `pause` seconds in (given the delivery's id), and
        the thread is joined after it."""
        self.website.faults(latency_ms=latency_ms)
        delivery_id = self.delivery(item_id, "website").id
        slow = threading.Thread(target=self.engine.sync, args=(delivery_id, "slow-worker"))
        slow.start()
        time.sleep(pause)
        try:
            yield delivery_id
        finally:
            slow.join()

    def publish(self, **overrides: object) -> int:
        overrides.setdefault("title", "2026年松山湖园区企业稳岗补贴申领指南")
        f = item_fields(**overrides)
        with self.db.session() as session:
            item_id = create_item(session, self.settings, f, actor="t").id
        with self.db.session() as session:
            publish_reviewed(session, self.settings, item_id, enabled_kinds=CHANNELS)
        return item_id

    def delivery(self, item_id: int, kind: str) -> Delivery:
        delivery: Delivery = item_delivery(self.db, item_id, kind)
        return delivery

    def sync(self, item_id: int, kind: str, *, force: bool = True) -> Delivery:
        d = self.delivery(item_id, kind)
        if force:
            make_due(self.db, d.id)
        self.engine.sync(d.id, "test-worker")
        return self.delivery(item_id, kind)

    def attempts(self, delivery_id: int) -> list[Attempt]:
        with self.db.session() as session:
            rows = list(
                session.scalars(
                    select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.id)
                )
            )
            session.expunge_all()
            return rows


@pytest.fixture
def world(tmp_path: Path, dispatched: list[tuple[int, str, float]]) -> Iterator[World]:
    with running_sandbox("website") as website, running_sandbox("catalogue") as catalogue:
        settings = sandbox_settings(
            tmp_path, migrated_sqlite(tmp_path), website, catalogue, http_timeout_seconds=1.0
        )
        engine = sandbox_engine(settings)
        yield World(settings, engine.database, engine, website, catalogue, dispatched)
        engine.database.dispose()


def page(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


def test_publish_edit_retract_reach_the_public_pages(world: World) -> None:
    item_id = world.publish()
    waiting = world.sync(item_id, "catalogue")
    assert waiting.state == DeliveryState.DEFERRED and waiting.wait_reason == "website"
    assert waiting.explanation == "waiting for the website page to exist"

    site = world.sync(item_id, "website")
    assert site.state == DeliveryState.LIVE and site.remote_url
    assert "稳岗补贴申领指南" in page(site.remote_url).text
    cat = world.sync(item_id, "catalogue")
    assert cat.state == DeliveryState.LIVE and cat.remote_url
    entry = page(cat.remote_url).text
    assert site.remote_url in entry and "733099896/2026-00001" in entry

    with world.db.session() as session:
        rev = edit_item(
            session,
            world.settings,
            item_id,
            ItemFields(title="2026年松山湖园区企业稳岗补贴申领指南（修订）"),
            actor="t",
        )
        publish_reviewed(session, world.settings, item_id, enabled_kinds=CHANNELS)
    assert rev is not None
    site = world.sync(item_id, "website")
    assert site.applied_revision_id == rev.id and site.state == DeliveryState.LIVE
    assert "（修订）" in page(site.remote_url or "").text
    assert world.sync(item_id, "catalogue").applied_revision_id == rev.id

    with world.db.session() as session:
        retract_item(session, item_id, actor="t")
    assert world.sync(item_id, "website").state == DeliveryState.WITHDRAWN
    assert world.sync(item_id, "catalogue").state == DeliveryState.WITHDRAWN
    assert page(site.remote_url or "").status_code == 404
    assert "（修订）" not in page(world.website.url + "/").text
    assert [a.outcome for a in world.attempts(site.id)] == [AttemptOutcome.OK] * 3


def test_busy_channel_is_retried_with_backoff_then_goes_live(world: World) -> None:
    item_id = world.publish()
    world.website.faults(fail_next=2)
    first = world.sync(item_id, "website", force=False)
    assert first.state == DeliveryState.RETRYING
    assert first.last_error_code == "busy" and first.last_error_message == "服务繁忙，请稍后再试"
    assert first.next_attempt_at > utcnow()
    assert world.sync(item_id, "website", force=False).state == DeliveryState.RETRYING  # not due
    assert world.sync(item_id, "website").state == DeliveryState.RETRYING
    live = world.sync(item_id, "website")
    assert live.state == DeliveryState.LIVE
    outcomes = [a.outcome for a in world.attempts(live.id)]
    assert outcomes == [AttemptOutcome.RETRY, AttemptOutcome.RETRY, AttemptOutcome.OK]
    assert world.attempts(live.id)[0].http_status == 503


def test_timeout_after_the_write_is_looked_up_not_written_twice(world: World) -> None:
    item_id = world.publish()
    world.website.faults(timeout_next_writes=1, hang_seconds=2)
    uncertain = world.sync(item_id, "website")
    assert uncertain.state == DeliveryState.UNKNOWN
    live = world.sync(item_id, "website")
    assert live.state == DeliveryState.LIVE
    assert [a.action for a in world.attempts(live.id)] == ["create", "lookup"]
    assert world.website.inspect()["counters"].get("creates") == 1


def test_garbage_answer_is_an_error_with_the_text_kept(world: World) -> None:
    item_id = world.publish()
    world.website.faults(garbage_next=1)
    d = world.sync(item_id, "website")
    assert d.state == DeliveryState.UNKNOWN and d.last_error_kind == "outcome_unknown"
    assert d.last_error_message and "<html" in d.last_error_message.lower()
    assert world.sync(item_id, "website").state == DeliveryState.LIVE


def test_refused_credentials_pause_the_channel_instead_of_failing(world: World) -> None:
    world.settings.website_secret = "wrong-secret"
    item_id = world.publish()
    d = world.sync(item_id, "website")
    assert d.state == DeliveryState.DEFERRED and d.last_error_kind == "auth_expired"
    assert "X-Signature does not match" in (d.last_error_message or "")
    assert "wrong-secret" not in (d.last_error_message or "") + (d.explanation or "")
    with world.db.session() as session:
        row = session.get(ChannelRow, "website")
        assert row is not None and row.needs_reauth


def test_a_claimed_delivery_cannot_be_claimed_twice_until_its_lease_expires(
    world: World,
) -> None:
    item_id = world.publish()
    d = world.delivery(item_id, "website")
    now = utcnow()
    with world.db.session() as session:
        assert claim_delivery(session, d.id, "w1", 60, now)
    with world.db.session() as session:
        assert not claim_delivery(session, d.id, "w2", 60, now)
    assert not world.engine.sync(d.id, "w2").claimed
    with world.db.session() as session:  # w1 dies mid-call: its lease runs out
        session.execute(
            update(Delivery)
            .where(Delivery.id == d.id)
            .values(lease_expires_at=utcnow(), in_flight="create")
        )
        session.add(Attempt(delivery_id=d.id, number=1, action="create", worker="w1"))
    result = world.engine.sync(d.id, "w2")
    assert result.claimed and result.state == DeliveryState.LIVE
    outcomes = [a.outcome for a in world.attempts(d.id)]
    assert outcomes[0] == AttemptOutcome.ABANDONED and outcomes[-1] == AttemptOutcome.OK


def test_an_edit_during_a_delivery_ends_with_the_newest_revision(world: World) -> None:
    item_id = world.publish()
    # The worker is inside the website call with revision 1.
    with world.slow_website_sync(item_id), world.db.session() as session:
        rev2 = edit_item(
            session, world.settings, item_id, ItemFields(title="修订后的标题"), actor="t"
        )
        publish_reviewed(session, world.settings, item_id, enabled_kinds=CHANNELS)
    assert rev2 is not None
    site = world.delivery(item_id, "website")
    assert site.state == DeliveryState.LIVE and site.applied_revision_id == rev2.id
    assert [a.action for a in world.attempts(site.id)] == ["create", "update"]
    assert "修订后的标题" in page(site.remote_url or "").text


def test_a_retract_during_a_publish_ends_with_nothing_live(world: World) -> None:
    item_id = world.publish()
    # The worker is inside the website call that creates the article.
    with world.slow_website_sync(item_id), world.db.session() as session:
        retract_item(session, item_id, actor="t")
    site = world.delivery(item_id, "website")
    assert site.state == DeliveryState.WITHDRAWN and site.remote_id is None
    assert [a.action for a in world.attempts(site.id)] == ["create", "delete"]
    assert world.sync(item_id, "catalogue").state == DeliveryState.WITHDRAWN
    articles = world.website.inspect()["records"]["articles"]
    assert [a["status"] for a in articles.values()] == ["withdrawn"]


def test_a_freeze_holds_publishing_but_not_urgent_items_or_withdrawals(world: World) -> None:
    with world.db.session() as session:
        start_freeze(session, "全国哀悼日", actor="operator")
    normal = world.publish()
    urgent = world.publish(urgent=True, title="关于台风“山竹”紧急转移安置的通告")
    held = world.sync(normal, "website")
    assert held.state == DeliveryState.DEFERRED and held.wait_reason == "freeze"
    assert held.explanation == "organisation-wide freeze: 全国哀悼日"
    assert world.sync(urgent, "website").state == DeliveryState.LIVE
    with world.db.session() as session:
        retract_item(session, urgent, actor="t")
    assert world.sync(urgent, "website").state == DeliveryState.WITHDRAWN  # withdrawals go
    world.sent.clear()
    with world.db.session() as session:
        _, woken = lift_freeze(session, actor="operator")
    assert woken == 1 and [kind for _, kind, _ in world.sent] == ["website"]
    assert world.sync(normal, "website", force=False).state == DeliveryState.LIVE
    with world.db.session() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert "freeze.start" in actions and "freeze.lift" in actions


def test_the_circuit_breaker_opens_then_one_probe_closes_it(world: World) -> None:
    world.settings.breaker_threshold = 3
    world.settings.breaker_cooldown_seconds = 1
    items = [world.publish() for _ in range(5)]
    world.website.faults(error_rate=1.0)
    for item_id in items[:3]:
        assert world.sync(item_id, "website").state == DeliveryState.RETRYING
    with world.db.session() as session:
        row = session.get(ChannelRow, "website")
        assert row is not None and row.breaker_open_until is not None
    calls = world.website.inspect()["counters"]["calls"]
    for item_id in items:  # while open, nobody calls the channel
        held = world.sync(item_id, "website")
        assert held.state == DeliveryState.DEFERRED and held.wait_reason == "breaker"
    assert world.website.inspect()["counters"]["calls"] == calls

    time.sleep(1.1)
    world.website.faults(error_rate=0.0)
    probe = world.sync(items[0], "website")  # the cooldown is over: this one probes
    assert probe.state == DeliveryState.LIVE
    with world.db.session() as session:
        row = session.get(ChannelRow, "website")
        assert row is not None and row.breaker_open_until is None and row.breaker_failures == 0
        woken = session.scalar(
            select(func.count(Delivery.id)).where(
                Delivery.channel_kind == "website",
                Delivery.wait_reason == "breaker",
                Delivery.next_attempt_at > utcnow(),
            )
        )
    assert woken == 0  # the probe's success released every held delivery
    for item_id in items[1:]:
        assert world.sync(item_id, "website", force=False).state == DeliveryState.LIVE


def test_a_failed_probe_reopens_the_breaker_for_longer(world: World) -> None:
    world.settings.breaker_threshold = 1
    world.settings.breaker_cooldown_seconds = 0.5
    item_id = world.publish()
    world.website.faults(error_rate=1.0)
    world.sync(item_id, "website")
    time.sleep(0.6)
    world.sync(item_id, "website")  # the probe fails
    with world.db.session() as session:
        row = session.get(ChannelRow, "website")
        assert row is not None and row.breaker_trips == 2 and row.breaker_open_until is not None
        assert row.breaker_open_until - utcnow() > timedelta(seconds=0.7)  # doubled cooldown


def test_the_failure_budget_fails_a_delivery_with_its_history_and_retry_starts_anew(
    world: World,
) -> None:
    world.settings.failure_budget_seconds = 1
    world.settings.breaker_threshold = 100
    item_id = world.publish()
    world.website.faults(error_rate=1.0)
    assert world.sync(item_id, "website").state == DeliveryState.RETRYING
    time.sleep(1.1)
    failed = world.sync(item_id, "website")
    assert failed.state == DeliveryState.FAILED
    assert failed.explanation and "gave up" in failed.explanation
    assert [a.outcome for a in world.attempts(failed.id)] == [
        AttemptOutcome.RETRY,
        AttemptOutcome.FAILED,
    ]
    world.website.faults(error_rate=0.0)
    with world.db.session() as session:
        assert retry_failed(session, "website", actor="operator") == 1
    live = world.sync(item_id, "website", force=False)
    assert live.state == DeliveryState.LIVE and live.failing_since is None


def test_an_edit_that_fixes_a_refused_revision_during_the_call_is_delivered(
    world: World,
) -> None:
    # Escaping 300,000 ">" makes 1.2 MB of HTML: the website refuses it (permanently).
    item_id = world.publish(body_html="<p>" + ">" * 300_000 + "</p>")
    with world.slow_website_sync(item_id), world.db.session() as session:
        fixed = edit_item(
            session, world.settings, item_id, ItemFields(body_html="<p>正文已精简。</p>"), actor="t"
        )
        publish_reviewed(session, world.settings, item_id, enabled_kinds=CHANNELS)
    assert fixed is not None
    refused = world.delivery(item_id, "website")
    assert refused.state == DeliveryState.PENDING  # not failed: the refused revision is gone
    assert refused.last_error_kind == "permanent"
    live = world.sync(item_id, "website", force=False)
    assert live.state == DeliveryState.LIVE and live.applied_revision_id == fixed.id


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_new_owner(world: World) -> None:
    item_id = world.publish()
    with world.slow_website_sync(item_id, pause=0.2) as delivery_id:
        with world.db.session() as session:  # the slow worker's lease runs out mid-call
            session.execute(
                update(Delivery).where(Delivery.id == delivery_id).values(lease_expires_at=utcnow())
            )
        taken = world.engine.sync(delivery_id, "new-owner")
    assert taken.claimed and taken.state == DeliveryState.LIVE
    final = world.delivery(item_id, "website")
    assert final.state == DeliveryState.LIVE and final.lease_owner is None
    history = [(a.worker, a.action, a.outcome) for a in world.attempts(delivery_id)]
    assert history == [
        ("slow-worker", "create", AttemptOutcome.ABANDONED),
        ("new-owner", "lookup", AttemptOutcome.OK),
    ]
    counters = world.website.inspect()["counters"]
    assert counters.get("creates") == 1 and "unchanged" not in counters


def test_the_sweeper_resends_a_due_delivery_only_after_a_while_and_per_channel(
    world: World,
) -> None:
    items = [world.publish() for _ in range(3)]  # each hands its website delivery over
    now = utcnow()
    with world.db.session() as session:  # handed to the broker on publish: not again yet
        assert due_deliveries(session, now, resend_after=30) == []
    lost = now + timedelta(seconds=31)
    with world.db.session() as session:  # the messages were lost; the catalogue's wait
        first = due_deliveries(session, lost, resend_after=30, per_channel=2)
    assert sorted(kind for _, kind in first) == ["website"] * 2
    with world.db.session() as session:  # just sent: not again within `resend_after`
        again = due_deliveries(session, lost + timedelta(seconds=10), resend_after=30)
    assert [kind for _, kind in again] == ["website"]  # the third item's
    with world.db.session() as session:  # lost again: sent again afterwards
        later = due_deliveries(session, lost + timedelta(seconds=41), resend_after=30)
    assert len(later) == len(items)
    with world.db.session() as session:  # the catalogue's safety net: due after 5 minutes
        safety = due_deliveries(session, now + timedelta(seconds=301), resend_after=30)
    assert sorted(kind for _, kind in safety) == ["catalogue"] * 3 + ["website"] * 3


def test_the_lease_is_renewed_while_a_slow_call_runs(world: World) -> None:
    # Renewed every 0.5 s (its third, at least 0.5 s); the call takes 1.5 s. Each renewal
    # leaves 0.7 s or more of slack, so a slow machine cannot make this test fail.
    world.settings.lease_seconds = 1.2
    world.settings.http_timeout_seconds = 3.0
    world.engine.pool.forget("website")  # built again with the longer timeout
    item_id = world.publish()
    # The body runs past the lease the delivery was claimed with, not past the renewed one.
    with world.slow_website_sync(item_id, latency_ms=1500, pause=1.3) as delivery_id:
        assert not world.engine.sync(delivery_id, "other-worker").claimed
    assert world.delivery(item_id, "website").state == DeliveryState.LIVE
    assert [a.worker for a in world.attempts(delivery_id)] == ["slow-worker"]
