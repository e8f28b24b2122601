"""The daily push digest: one mass send a day of at most 8 articles, resent safely."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.wechat import BEIJING, WeChatChannel
from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.publication import ChannelPool
from publisher.delivery.wechat_digest import run_daily_digest, scheduled_wechat_digest
from publisher.models import (
    Delivery,
    DeliveryState,
    Item,
    ItemStatus,
    Revision,
    SharedValue,
    WeChatDigest,
    WeChatDigestState,
)
from publisher.shared import DatabaseSharedStore
from tests.contract.harness_wechat import make
from tests.contract.harnesses import ContractHarness
from tests.support import migrated_sqlite, sealer_for_tests

SETTINGS = Settings(org_code="733099896")
DAY_ONE = datetime(2026, 11, 20, 18, 30, tzinfo=BEIJING)


@pytest.fixture
def harness() -> Iterator[ContractHarness]:
    with make() as made:
        yield made


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(migrated_sqlite(tmp_path))
    yield db
    db.dispose()


def add_push_items(session: Session, count: int, push_tags: list[str]) -> list[int]:
    ids = []
    for n in range(1, count + 1):
        item = Item(
            domain_code="welfare",
            department_code="sgj",
            status=ItemStatus.PUBLISHED,
            push_tags=push_tags,
            index_no=f"733099896/2026-{n:05d}",
        )
        session.add(item)
        session.flush()
        revision = Revision(
            item_id=item.id,
            number=1,
            title=f"临时救助公示第{n}批",
            summary="公示",
            body_html=f"<p>第{n}批名单。</p>",
            formed_on=date(2026, 11, 2),
            content_hash=f"{n:064d}",
        )
        session.add(revision)
        session.flush()
        live_at = datetime(2026, 11, 20, 1, n, tzinfo=UTC)
        session.add_all(
            [
                Delivery(
                    item_id=item.id,
                    channel_kind="wechat",
                    state=DeliveryState.LIVE,
                    desired_revision_id=revision.id,
                    applied_revision_id=revision.id,
                    remote_id=f"article-{n}",
                    live_at=live_at,
                ),
                Delivery(
                    item_id=item.id,
                    channel_kind="website",
                    state=DeliveryState.LIVE,
                    applied_revision_id=revision.id,
                    live_at=live_at,
                    remote_url=f"http://127.0.0.1:8101/articles/item-{item.id}.html",
                ),
            ]
        )
        ids.append(item.id)
    return ids


def mass_sends(h: ContractHarness) -> list[dict[str, Any]]:
    records: dict[str, dict[str, Any]] = h.sandbox.inspect()["records"]["mass"]
    return sorted(records.values(), key=lambda m: m["at"])


def channel_of(h: ContractHarness) -> WeChatChannel:
    assert isinstance(h.channel, WeChatChannel)
    return h.channel


def test_ten_items_make_a_digest_of_eight_and_two_wait_for_the_next_day(
    harness: ContractHarness, database: Database
) -> None:
    channel = channel_of(harness)
    with database.session() as session:
        ids = add_push_items(session, 10, push_tags=[])

    early = run_daily_digest(
        database, channel=channel, settings=SETTINGS, now=DAY_ONE - timedelta(hours=1)
    )
    first = run_daily_digest(database, channel=channel, settings=SETTINGS, now=DAY_ONE)
    again = run_daily_digest(
        database, channel=channel, settings=SETTINGS, now=DAY_ONE + timedelta(hours=1)
    )
    requests.post(f"{harness.sandbox.url}/_sandbox/wechat/new_day", timeout=5)
    second = run_daily_digest(
        database, channel=channel, settings=SETTINGS, now=DAY_ONE + timedelta(days=1)
    )

    assert not early.ran and not early.sent
    assert [d.item_ids for d in first.sent] == [tuple(ids[:8])]
    assert first.waiting_item_ids == ids[8:]
    assert again.sent == [] and again.waiting_item_ids == ids[8:]
    assert [d.item_ids for d in second.sent] == [tuple(ids[8:])]
    sends = mass_sends(harness)
    assert [len(m["articles"]) for m in sends] == [8, 2]
    assert sends[0]["filter"] == {"is_to_all": True}
    assert sends[0]["clientmsgid"] != sends[1]["clientmsgid"]


def test_a_lost_sendall_answer_is_resent_and_deduplicated_by_clientmsgid(
    harness: ContractHarness, database: Database
) -> None:
    channel = channel_of(harness)
    with database.session() as session:
        add_push_items(session, 3, push_tags=["101"])
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2)

    lost = run_daily_digest(database, channel=channel, settings=SETTINGS, now=DAY_ONE)
    with database.session() as session:
        after_loss = [d.state for d in session.scalars(select(WeChatDigest)).all()]
    resent = run_daily_digest(
        database, channel=channel, settings=SETTINGS, now=DAY_ONE + timedelta(minutes=15)
    )
    with database.session() as session:
        digests = session.scalars(select(WeChatDigest)).all()
        states = [d.state for d in digests]

    assert lost.sent == [] and lost.errors
    assert after_loss == [WeChatDigestState.UNKNOWN], "the uncertain digest was committed"
    assert len(resent.sent) == 1 and resent.sent[0].duplicate
    assert states == [WeChatDigestState.SENDING], "accepted; its result comes later"
    sends = mass_sends(harness)
    assert len(sends) == 1, "WeChat saw the clientmsgid: no second mass send"
    assert sends[0]["filter"] == {"is_to_all": False, "tag_id": 101}


def test_the_scheduled_digest_sends_with_the_shared_store_in_the_same_sqlite_database(
    harness: ContractHarness, database: Database
) -> None:
    # The embedded default: the adapter's token and thumbs live in the store's own SQLite
    # file, whose write lock a transaction held across the WeChat calls would keep from them.
    settings = Settings(
        org_code="733099896",
        wechat_appid="sandbox",
        wechat_secret="sandbox-secret",
        wechat_api_base=harness.sandbox.url,
        wechat_digest_time="00:00",
        http_timeout_seconds=1.0,
    )
    pool = ChannelPool(settings, DatabaseSharedStore(database, sealer=sealer_for_tests()))
    with database.session() as session:
        ids = add_push_items(session, 2, push_tags=[])

    started = time.monotonic()
    result = scheduled_wechat_digest(database, settings, pool)

    assert time.monotonic() - started < 10, "nothing waited on the database lock"
    assert result.errors == []
    assert [d.item_ids for d in result.sent] == [tuple(ids)]
    with database.session() as session:
        [digest] = session.scalars(select(WeChatDigest)).all()
        assert digest.state == WeChatDigestState.SENDING
        assert session.get(SharedValue, "wechat:access_token") is not None
    assert [len(m["articles"]) for m in mass_sends(harness)] == [2]
