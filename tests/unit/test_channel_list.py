"""The channel list (`GET /api/v1/channels`, `publisher channels list`): the circuit breaker
opened by real failures against the website sandbox, and the daily budgets a real WeChat
adapter spent against its sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import update

from channels.base import Channel
from channels.wechat import WeChatChannel
from publisher.api.app import create_app
from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.gate import take_probe
from publisher.delivery.publication import ChannelPool
from publisher.models import Channel as ChannelRow
from publisher.models import DeliveryState, utcnow
from publisher.services.items import create_item
from publisher.shared import shared_store
from tests.support import (
    SANDBOX_CREDENTIALS,
    TEST_SECRET_KEY,
    RunningSandbox,
    item_delivery,
    item_fields,
    publish_reviewed,
    running_sandbox,
    sample_publication,
    sandbox_engine,
    user_with_token,
)


@dataclass
class World:
    settings: Settings
    engine: DeliveryEngine
    website: RunningSandbox
    api: TestClient
    headers: dict[str, str]

    def channels(self) -> dict[str, dict[str, Any]]:
        answer = self.api.get("/api/v1/channels", headers=self.headers)
        assert answer.status_code == 200, answer.text
        return {c["kind"]: c for c in answer.json()["channels"]}


@pytest.fixture
def world(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch, dispatched: list[Any]
) -> Iterator[World]:
    with running_sandbox("website") as website, running_sandbox("wechat") as wechat:
        for box in (website, wechat):
            monkeypatch.setenv(f"PUBLISHER_{box.kind.upper()}_API_BASE", box.url)
            for name, value in SANDBOX_CREDENTIALS[box.kind].items():
                monkeypatch.setenv(f"PUBLISHER_{name.upper()}", value)
        monkeypatch.setenv("PUBLISHER_SECRET_KEY", TEST_SECRET_KEY)
        monkeypatch.setenv("PUBLISHER_BREAKER_THRESHOLD", "1")
        reset_settings()
        settings = get_settings()
        engine = sandbox_engine(settings)
        token = user_with_token(engine.database, "admin")
        with TestClient(create_app(settings)) as api:
            yield World(settings, engine, website, api, {"Authorization": f"Bearer {token}"})
        engine.database.dispose()


def test_the_breaker_shows_closed_then_open_until_its_probe_then_half_open_with_its_owner(
    world: World,
) -> None:
    assert world.channels()["website"]["breaker"]["state"] == "closed"
    with world.engine.database.session() as session:
        item_id = int(
            create_item(session, world.settings, item_fields(channels=["website"]), actor="t").id
        )
        publish_reviewed(session, world.settings, item_id, enabled_kinds=["website"])
    world.website.faults(fail_next=1)
    delivery = item_delivery(world.engine.database, item_id, "website")
    assert world.engine.sync(delivery.id, "w1").state == DeliveryState.RETRYING

    opened = world.channels()["website"]["breaker"]
    with world.engine.database.session() as session:
        row = session.get(ChannelRow, "website")
        assert row is not None and row.breaker_open_until is not None
        open_until = row.breaker_open_until
    assert opened["state"] == "open" and opened["failures"] == 1
    assert opened["next_probe_at"] == opened["open_until"] == open_until.isoformat()

    # The test plays the clock: the cooldown is over, and a worker takes the probe.
    with world.engine.database.session() as session:
        session.execute(
            update(ChannelRow)
            .where(ChannelRow.kind == "website")
            .values(breaker_open_until=utcnow() - timedelta(seconds=1))
        )
    listed = world.channels()["website"]["breaker"]
    assert listed["state"] == "half_open" and listed["probe_owner"] is None
    with world.engine.database.session() as session:
        assert take_probe(session, world.settings, "website", "probe-worker", utcnow())
    probing = world.channels()["website"]["breaker"]
    assert probing["state"] == "half_open" and probing["probe_owner"] == "probe-worker"

    listing = CliRunner().invoke(cli, ["channels", "list"], catch_exceptions=False)
    assert listing.exit_code == 0, listing.output
    (website_line,) = [line for line in listing.output.splitlines() if line.startswith("website")]
    assert "半开，由 probe-worker 试探" in website_line
    assert world.channels()["catalogue"]["breaker"]["state"] == "closed"


@pytest.mark.skipif(
    WeChatChannel.budget_usage is Channel.budget_usage,
    reason="the WeChat adapter keeps no daily budgets on this branch (issue 13's WeChat part)",
)
def test_budgets_a_real_wechat_adapter_spent_are_listed_with_use_limit_and_reset(
    world: World,
) -> None:
    # The API reads the settings' shared store (the embedded one beside the database).
    adapter = ChannelPool(world.settings, shared_store(world.settings)).get("wechat")
    adapter.create(sample_publication())

    budgets = {b["endpoint"]: b for b in world.channels()["wechat"]["budgets"]}

    submitted = budgets["freepublish/submit"]
    assert submitted["used"] == 1 and submitted["left"] == submitted["limit"] - 1
    assert submitted["resets_at"] > utcnow().isoformat()
    assert all(b["used"] == 0 for name, b in budgets.items() if name.startswith("message/"))
    listing = CliRunner().invoke(cli, ["channels", "list"], catch_exceptions=False)
    assert f"freepublish/submit{' ' * 14} 1/{submitted['limit']}" in listing.output
