"""Retracting a pushed item through the delivery engine (issue 13, items 3 and 4): the
published article, the copy the digest mass-sent (message/mass/delete, that article only)
and, with the last item showing it, the cover's thumb material are all gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from channels.wechat import WeChatChannel
from publisher.config import Settings
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.wechat_digest import run_daily_digest
from publisher.models import Attempt, Delivery, DeliveryState, WeChatDigest, WeChatDigestState
from publisher.services.items import create_item, retract_item
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

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)  # 18:30 in Beijing: digest time


@pytest.fixture
def wechat() -> Iterator[RunningSandbox]:
    with running_sandbox("wechat") as running:
        yield running


@pytest.fixture
def engine(tmp_path: Path, wechat: RunningSandbox) -> Iterator[DeliveryEngine]:
    with running_sandbox("website") as website:
        settings = sandbox_settings(
            tmp_path, migrated_sqlite(tmp_path), website, wechat, wechat_poll_seconds=0.2
        )
        built = sandbox_engine(settings)
        yield built
        built.database.dispose()


def digest_in_background(
    engine: DeliveryEngine, channel: WeChatChannel, *, until: Callable[[], bool]
) -> threading.Thread:
    """Run the daily digest in a thread; return once `until()` holds (within 15 s)."""
    digest = threading.Thread(
        target=run_daily_digest,
        args=(engine.database,),
        kwargs={"channel": channel, "settings": engine.settings, "now": NOW},
    )
    digest.start()
    deadline = time.monotonic() + 15
    while not until():
        assert time.monotonic() < deadline, "the digest never got that far"
        time.sleep(0.05)
    return digest


def sync(engine: DeliveryEngine, item_id: int, kind: str) -> Delivery:
    delivery = item_delivery(engine.database, item_id, kind)
    make_due(engine.database, delivery.id)
    engine.sync(delivery.id, "test-worker")
    found: Delivery = item_delivery(engine.database, item_id, kind)
    return found


def settle(engine: DeliveryEngine, item_id: int, kind: str, state: DeliveryState) -> Delivery:
    deadline = time.monotonic() + 15
    while (delivery := sync(engine, item_id, kind)).state != state:
        assert time.monotonic() < deadline, f"still {delivery.state}: {delivery.explanation}"
        time.sleep(0.2)
    return delivery


def publish_pushed(engine: DeliveryEngine, settings: Settings, title: str) -> int:
    with engine.database.session() as session:
        fields = item_fields(title=title, channels=["website", "wechat"], push=[])
        item_id = int(create_item(session, settings, fields, actor="t").id)
    with engine.database.session() as session:
        publish_reviewed(session, settings, item_id, enabled_kinds=["website", "wechat"])
    settle(engine, item_id, "website", DeliveryState.LIVE)
    settle(engine, item_id, "wechat", DeliveryState.LIVE)
    return item_id


def records(sandbox: RunningSandbox, name: str) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.inspect()["records"][name]
    return found


def test_retraction_removes_the_article_the_pushed_copy_and_the_unused_thumb(
    engine: DeliveryEngine, wechat: RunningSandbox
) -> None:
    settings = engine.settings
    first = publish_pushed(engine, settings, "松山湖2026年城乡困难群众临时救助资金发放情况公示")
    second = publish_pushed(engine, settings, "松山湖2026年老旧小区改造计划公示")
    channel = engine.pool.get("wechat")
    assert isinstance(channel, WeChatChannel)
    # WeChat takes a while to send: the first retraction comes while it is still sending.
    changes = {"mass_delay_seconds": 1.5}
    requests.post(f"{wechat.url}/_sandbox/wechat", json=changes, timeout=5).raise_for_status()
    run = run_daily_digest(engine.database, channel=channel, settings=settings, now=NOW)
    assert [d.item_ids for d in run.sent] == [(first, second)]
    [thumb] = [m for m, r in records(wechat, "materials").items() if r["type"] == "thumb"]

    with engine.database.session() as session:
        retract_item(session, first, actor="t")
    waiting = sync(engine, first, "wechat")
    deadline = time.monotonic() + 15
    while next(iter(records(wechat, "mass").values()))["msg_status"] == "SENDING":
        assert time.monotonic() < deadline, "the sandbox never finished sending"
        time.sleep(0.1)
    withdrawn = settle(engine, first, "wechat", DeliveryState.WITHDRAWN)
    after_first = dict(records(wechat, "materials"))
    with engine.database.session() as session:
        notes = session.scalars(
            select(Attempt.explanation).where(Attempt.delivery_id == withdrawn.id)
        ).all()
    with engine.database.session() as session:
        retract_item(session, second, actor="t")
    settle(engine, second, "wechat", DeliveryState.WITHDRAWN)

    assert waiting.state == DeliveryState.DEFERRED, "waits for WeChat to finish sending"
    assert any("still being sent" in (note or "") for note in notes), notes
    [message] = records(wechat, "mass").values()
    assert message["deleted_idx"] == [1, 2], "each retraction deleted its own pushed copy"
    assert thumb in after_first, "the second item still showed the domain's card"
    assert thumb not in records(wechat, "materials"), "deleted with the last item showing it"
    articles = records(wechat, "articles").values()
    assert all(a["deleted"] for a in articles) and len(articles) == 2
    assert channel.health()["materials"]["held"] == 0


def wechat_settings(sandbox: RunningSandbox, **changes: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/wechat", json=changes, timeout=5).raise_for_status()


def test_an_uncertain_digest_is_not_resent_with_an_item_retracted_since(
    engine: DeliveryEngine, wechat: RunningSandbox
) -> None:
    settings = engine.settings
    retracted = publish_pushed(engine, settings, "松山湖2026年临时救助资金发放情况公示")
    kept = publish_pushed(engine, settings, "松山湖2026年老旧小区改造计划公示")
    channel = engine.pool.get("wechat")
    assert isinstance(channel, WeChatChannel)
    # WeChat refuses the sendall: the digest is recorded as uncertain, nothing went out.
    wechat_settings(wechat, unauthorized=["message/mass/sendall"])
    refused = run_daily_digest(engine.database, channel=channel, settings=settings, now=NOW)
    with engine.database.session() as session:
        uncertain = session.scalars(select(WeChatDigest.state)).all()
    wechat_settings(wechat, unauthorized=[])
    with engine.database.session() as session:
        retract_item(session, retracted, actor="t")
    settle(engine, retracted, "wechat", DeliveryState.WITHDRAWN)

    again = run_daily_digest(
        engine.database, channel=channel, settings=settings, now=NOW + timedelta(minutes=10)
    )

    assert refused.sent == [] and uncertain == [WeChatDigestState.UNKNOWN]
    assert [d.item_ids for d in again.sent] == [(kept,)], "a new digest without it"
    [message] = records(wechat, "mass").values()
    assert message["articles"] == ["松山湖2026年老旧小区改造计划公示"], "never pushed"


def test_a_copy_pushed_while_its_item_was_being_retracted_is_deleted(
    engine: DeliveryEngine, wechat: RunningSandbox
) -> None:
    settings = engine.settings
    retracted = publish_pushed(engine, settings, "松山湖2026年临时救助资金发放情况公示")
    channel = engine.pool.get("wechat")
    assert isinstance(channel, WeChatChannel)
    # WeChat takes the sendall, then answers only after the retraction is done.
    wechat.faults(timeout_next_writes=1, hang_seconds=5.0)
    digest = digest_in_background(engine, channel, until=lambda: bool(records(wechat, "mass")))
    with engine.database.session() as session:
        retract_item(session, retracted, actor="t")
    settle(engine, retracted, "wechat", DeliveryState.WITHDRAWN)
    answered_after_withdrawal = digest.is_alive()
    digest.join(timeout=30)

    deleted = settle(engine, retracted, "wechat", DeliveryState.WITHDRAWN)

    assert answered_after_withdrawal, "sendall's answer came after the withdrawal"
    [message] = records(wechat, "mass").values()
    assert message["deleted_idx"] == [1], "the late copy was deleted too"
    assert deleted.remote_id is None and deleted.remote_state == {}


def test_a_copy_recorded_while_the_retraction_deletes_is_deleted_too(
    engine: DeliveryEngine, wechat: RunningSandbox
) -> None:
    settings = engine.settings
    retracted = publish_pushed(engine, settings, "松山湖2026年临时救助资金发放情况公示")
    channel = engine.pool.get("wechat")
    assert isinstance(channel, WeChatChannel)
    # sendall's answer comes 3 s after it took effect, in the middle of the retraction's
    # freepublish/delete, whose answer comes 8 s after.
    wechat.faults(timeout_next_writes=1, hang_seconds=3.0)
    digest = digest_in_background(engine, channel, until=lambda: bool(records(wechat, "mass")))
    wechat.faults(timeout_next_writes=1, hang_seconds=8.0)
    with engine.database.session() as session:
        retract_item(session, retracted, actor="t")
    sync(engine, retracted, "wechat")
    recorded_during_the_delete = not digest.is_alive()
    digest.join(timeout=30)

    deleted = settle(engine, retracted, "wechat", DeliveryState.WITHDRAWN)

    assert recorded_during_the_delete, "sendall's answer came while the article was deleted"
    [message] = records(wechat, "mass").values()
    assert message["deleted_idx"] == [1], "the copy recorded meanwhile was deleted too"
    assert deleted.remote_state == {}


def test_an_item_retracted_while_its_digest_is_drafted_is_not_pushed(
    engine: DeliveryEngine, wechat: RunningSandbox
) -> None:
    settings = engine.settings
    retracted = publish_pushed(engine, settings, "松山湖2026年临时救助资金发放情况公示")
    channel = engine.pool.get("wechat")
    assert isinstance(channel, WeChatChannel)
    calls_before = int(wechat.inspect()["counters"]["calls"])
    wechat.faults(latency_ms=2000)  # the digest's batch is read; its draft takes a while
    digest = digest_in_background(
        engine, channel, until=lambda: int(wechat.inspect()["counters"]["calls"]) > calls_before
    )
    with engine.database.session() as session:
        retract_item(session, retracted, actor="t")
    digest.join(timeout=30)
    wechat.faults(latency_ms=0)
    with engine.database.session() as session:
        recorded = session.scalars(select(WeChatDigest)).all()

    assert records(wechat, "mass") == {}, "the retracted item was never pushed"
    assert recorded == []
