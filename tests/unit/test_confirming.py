"""`confirming` against the WeChat sandbox, through the real engine: a publish job WeChat
accepted waits in `confirming`, never `unknown`; a submit whose answer was lost is `unknown`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from publisher.delivery.engine import DeliveryEngine
from publisher.models import Attempt, DeliveryState
from publisher.services.items import create_item
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

KINDS = ["website", "wechat"]


@pytest.fixture
def world(
    tmp_path: Path, dispatched: list[tuple[int, str, float]]
) -> Iterator[tuple[DeliveryEngine, RunningSandbox]]:
    with running_sandbox("website") as website, running_sandbox("wechat") as wechat:
        settings = sandbox_settings(
            tmp_path,
            migrated_sqlite(tmp_path),
            website,
            wechat,
            wechat_poll_seconds=0.2,
            http_timeout_seconds=1.0,
        )
        engine = sandbox_engine(settings)
        yield engine, wechat
        engine.database.dispose()


def published(engine: DeliveryEngine) -> int:
    settings = engine.settings
    with engine.database.session() as session:
        item_id = int(create_item(session, settings, item_fields(channels=KINDS), actor="t").id)
    with engine.database.session() as session:
        publish_reviewed(session, settings, item_id, enabled_kinds=KINDS)
    assert states(engine, item_id, "website") == [DeliveryState.LIVE]
    return item_id


def states(engine: DeliveryEngine, item_id: int, kind: str, *, until_live: bool = False) -> list:
    """The states one sync after another leaves the delivery in (until live, within 15 s)."""
    seen = []
    deadline = time.monotonic() + 15
    while True:
        delivery = item_delivery(engine.database, item_id, kind)
        make_due(engine.database, delivery.id)
        engine.sync(delivery.id, "test-worker")
        seen.append(item_delivery(engine.database, item_id, kind).state)
        if not until_live or seen[-1] == DeliveryState.LIVE:
            return seen
        assert time.monotonic() < deadline, f"never live: {seen}"
        time.sleep(0.2)


def test_a_normal_wechat_publish_confirms_then_goes_live_never_unknown(
    world: tuple[DeliveryEngine, RunningSandbox],
) -> None:
    engine, _ = world
    item_id = published(engine)
    delivery = item_delivery(engine.database, item_id, "wechat")
    assert delivery.state == DeliveryState.PENDING

    seen = states(engine, item_id, "wechat", until_live=True)

    assert seen[0] == DeliveryState.CONFIRMING and seen[-1] == DeliveryState.LIVE
    assert DeliveryState.UNKNOWN not in seen
    assert set(seen) == {DeliveryState.CONFIRMING, DeliveryState.LIVE}


def test_a_lost_submit_answer_is_unknown_not_confirming(
    world: tuple[DeliveryEngine, RunningSandbox],
) -> None:
    engine, wechat = world
    item_id = published(engine)
    # The sandbox's injected timeouts hit the writes the public sees: here the submit, whose
    # job WeChat accepted though its answer never came back.
    wechat.faults(timeout_next_writes=1, hang_seconds=2)

    (state,) = states(engine, item_id, "wechat")

    delivery = item_delivery(engine.database, item_id, "wechat")
    with engine.database.session() as session:
        kinds = session.scalars(
            select(Attempt.error_kind).where(Attempt.delivery_id == delivery.id)
        ).all()
    assert state == DeliveryState.UNKNOWN and delivery.uncertain
    assert kinds == ["outcome_unknown"]
    assert wechat.inspect()["counters"]["publishes_submitted"] == 1
