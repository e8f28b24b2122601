"""An operator adopts a post (verified on the channel) or marks a delivery posted (on their
word, audited): through the API and the CLI, against the real website and Weibo sandboxes
and engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from publisher.api.app import create_app
from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.delivery.adopt import adopt_post
from publisher.delivery.engine import DeliveryEngine
from publisher.errors import Conflict
from publisher.models import AuditEvent, DeliveryState
from publisher.services.items import create_item
from tests.support import (
    SANDBOX_CREDENTIALS,
    TEST_SECRET_KEY,
    RunningSandbox,
    housing_notice,
    item_delivery,
    migrated_sqlite,
    publish_reviewed,
    running_sandbox,
    sandbox_engine,
    sandbox_settings,
    user_with_token,
)


@dataclass
class World:
    settings: Settings
    engine: DeliveryEngine
    website: RunningSandbox
    api: TestClient
    operator: dict[str, str]

    def unknown_delivery(self, n: int) -> int:
        """Item `n`'s website delivery, whose write took effect but whose answer was lost."""
        with self.engine.database.session() as session:
            fields = housing_notice(n)
            fields.channels = ["website"]
            item_id = int(create_item(session, self.settings, fields, actor="t").id)
            publish_reviewed(session, self.settings, item_id, enabled_kinds=["website"])
        delivery_id = int(item_delivery(self.engine.database, item_id, "website").id)
        self.website.faults(timeout_next_writes=1, hang_seconds=2)
        assert self.engine.sync(delivery_id, "w").state == DeliveryState.UNKNOWN
        return delivery_id

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.api.post(f"/api/v1/deliveries/{path}", json=body, headers=self.operator)

    def audited(self, action: str) -> list[dict[str, Any]]:
        with self.engine.database.session() as session:
            rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()
            return [{"subject": r.subject, "actor": r.actor, **(r.details or {})} for r in rows]


@pytest.fixture
def world(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch, dispatched: list[Any]
) -> Iterator[World]:
    with running_sandbox("website") as website:
        monkeypatch.setenv("PUBLISHER_WEBSITE_API_BASE", website.url)
        for name, value in SANDBOX_CREDENTIALS["website"].items():
            monkeypatch.setenv(f"PUBLISHER_{name.upper()}", value)
        monkeypatch.setenv("PUBLISHER_SECRET_KEY", TEST_SECRET_KEY)
        monkeypatch.setenv("PUBLISHER_HTTP_TIMEOUT_SECONDS", "1")
        reset_settings()
        settings = get_settings()
        engine = sandbox_engine(settings)
        token = user_with_token(engine.database, "operator", name="ops-li")
        with TestClient(create_app(settings)) as api:
            yield World(settings, engine, website, api, {"Authorization": f"Bearer {token}"})
        engine.database.dispose()


def test_adopt_verifies_the_post_on_the_channel_and_refuses_a_wrong_id(world: World) -> None:
    delivery_id = world.unknown_delivery(1)
    (record,) = world.website.inspect()["records"]["articles"].values()

    wrong = world.post(f"{delivery_id}/adopt", {"remote_id": "item-999"})
    assert wrong.status_code == 409, wrong.text
    assert f"shows this item as post {record['id']}, not item-999" in wrong.json()["detail"]
    assert world.post(f"{delivery_id}/adopt", {}).status_code == 422
    assert world.post(f"{delivery_id}/adopt", {"remote_id": "  "}).status_code == 422

    adopted = world.post(f"{delivery_id}/adopt", {"remote_id": record["id"]})

    assert adopted.status_code == 200, adopted.text
    view = adopted.json()
    assert (view["state"], view["remote_id"]) == ("live", record["id"])
    assert "adopted by" in view["explanation"]
    assert world.audited("delivery.adopt") == [
        {
            "subject": f"delivery:{delivery_id}",
            "actor": "ops-li",
            "remote_id": record["id"],
            "channel": "website",
        }
    ]
    assert len(world.website.inspect()["records"]["articles"]) == 1  # nothing written again
    again = world.post(f"{delivery_id}/adopt", {"remote_id": record["id"]})
    assert again.status_code == 409 and "is live" in again.json()["detail"]


def test_mark_posted_needs_a_reason_and_records_it_in_the_audit_trail(world: World) -> None:
    by_api, by_cli = world.unknown_delivery(1), world.unknown_delivery(2)

    assert world.post(f"{by_api}/mark-posted", {"remote_id": "p-1"}).status_code == 422
    assert world.post(f"{by_api}/mark-posted", {"reason": ""}).status_code == 422
    marked = world.post(
        f"{by_api}/mark-posted",
        {"remote_id": "p-1", "url": "https://example.org/p-1", "reason": "在网站后台看到已发布"},
    )
    assert marked.status_code == 200, marked.text
    assert (marked.json()["state"], marked.json()["remote_id"]) == ("live", "p-1")

    runner = CliRunner()
    blank = runner.invoke(cli, ["jobs", "mark-posted", str(by_cli)])
    assert blank.exit_code == 2 and "--reason" in blank.output
    done = runner.invoke(
        cli,
        ["--as", "ops-li", "jobs", "mark-posted", str(by_cli), "--reason", "值班员核实已发布"],
        catch_exceptions=False,
    )
    assert done.exit_code == 0, done.output

    audited = {row["subject"]: row for row in world.audited("delivery.mark_posted")}
    assert audited[f"delivery:{by_api}"]["reason"] == "在网站后台看到已发布"
    assert audited[f"delivery:{by_cli}"]["reason"] == "值班员核实已发布"
    assert audited[f"delivery:{by_cli}"]["actor"].endswith("as ops-li")
    assert item_delivery_state(world, by_cli) == DeliveryState.LIVE


def item_delivery_state(world: World, delivery_id: int) -> DeliveryState:
    detail = world.api.get(f"/api/v1/deliveries/{delivery_id}", headers=world.operator).json()
    return DeliveryState(detail["state"])


def test_the_cli_adopts_by_id_and_says_why_it_refuses(world: World) -> None:
    delivery_id = world.unknown_delivery(1)
    (record,) = world.website.inspect()["records"]["articles"].values()
    runner = CliRunner()

    shown = runner.invoke(cli, ["--as", "ops-li", "jobs", "show", str(delivery_id)])
    assert f"publisher jobs adopt {delivery_id} REMOTE_ID" in shown.output
    refused = runner.invoke(cli, ["--as", "ops-li", "jobs", "adopt", str(delivery_id), "x-1"])
    adopted = runner.invoke(
        cli, ["--as", "ops-li", "jobs", "adopt", str(delivery_id), record["id"]]
    )

    assert refused.exit_code == 1 and "本条信息的编号是 item-1，不是 x-1" in refused.output
    assert adopted.exit_code == 0, adopted.output
    assert item_delivery_state(world, delivery_id) == DeliveryState.LIVE
    assert json.dumps(world.audited("delivery.adopt")).count(record["id"]) == 1


def test_adopting_another_items_weibo_post_is_refused_and_the_items_own_is_taken(
    tmp_path: Path, dispatched: list[Any]
) -> None:
    with running_sandbox("website") as website, running_sandbox("weibo") as weibo:
        settings = sandbox_settings(
            tmp_path, migrated_sqlite(tmp_path), website, weibo, http_timeout_seconds=2
        )
        engine = sandbox_engine(settings)
        ours, other = (_published_on_website(engine, settings, n) for n in (1, 2))

        def weibo_accepts(*domains: str) -> None:
            config = {"safe_domains": list(domains)}
            requests.post(f"{weibo.url}/_sandbox/weibo/config", json=config, timeout=5)

        weibo_accepts("nowhere.example")  # refused (10017): our delivery fails, nothing posted
        assert engine.sync(ours["weibo"], "w").state == DeliveryState.FAILED
        weibo_accepts("127.0.0.1")
        assert engine.sync(other["weibo"], "w").state == DeliveryState.LIVE
        others_post = item_delivery(engine.database, other["item"], "weibo").remote_id
        # The operator posts ours by hand on weibo.com, then adopts it by its id.
        fields = housing_notice(1)
        text = f"【{fields.title}】{fields.summary} {ours['url']}"
        answer = requests.post(
            f"{weibo.url}/2/statuses/share.json",
            data={"access_token": "sandbox", "rip": "127.0.0.1", "status": text},
            timeout=5,
        )
        our_post = str(answer.json()["idstr"])

        def adopt(remote_id: str) -> None:
            adopt_post(engine.database, settings, engine.pool, ours["weibo"], remote_id, actor="li")

        # Refused, naming the post the channel shows for this item (found by its link).
        with pytest.raises(Conflict, match=f"as post {our_post}, not {others_post}"):
            adopt(others_post)
        assert item_delivery(engine.database, ours["item"], "weibo").state == DeliveryState.FAILED
        adopt(our_post)
        adopted = item_delivery(engine.database, ours["item"], "weibo")
        assert (adopted.state, adopted.remote_id) == (DeliveryState.LIVE, our_post)
        assert item_delivery(engine.database, other["item"], "weibo").remote_id == others_post
        engine.database.dispose()


def _published_on_website(engine: DeliveryEngine, settings: Settings, n: int) -> dict[str, Any]:
    """Item `n` (`housing_notice`) published, live on the website; its Weibo delivery's id."""
    with engine.database.session() as session:
        item_id = int(create_item(session, settings, housing_notice(n), actor="t").id)
        publish_reviewed(session, settings, item_id, enabled_kinds=[])
    site = item_delivery(engine.database, item_id, "website")
    assert engine.sync(site.id, "w").state == DeliveryState.LIVE
    url = item_delivery(engine.database, item_id, "website").remote_url
    return {
        "item": item_id,
        "weibo": item_delivery(engine.database, item_id, "weibo").id,
        "url": url,
    }
