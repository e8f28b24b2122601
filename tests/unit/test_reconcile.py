"""Reconciliation against real website and Weibo sandboxes, on the migrated embedded store.

The engine first brings each delivery live (`DeliveryEngine.sync`, as a worker would); then
someone changes the channel by hand over its own API, and `reconcile_channel` must find it,
record it once, and (under the policy "repair") hand it back to the engine, which repairs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from channels.signing import signed_headers
from channels.website import article_payload
from publisher import db as db_module
from publisher.api.app import create_app
from publisher.auth import create_token
from publisher.cli.drift import drift as drift_cli
from publisher.config import reset_settings
from publisher.db import Database
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.publication import ChannelPool
from publisher.delivery.reconcile import (
    ReconcileReport,
    reconcile_channel,
    repair_drift,
    scheduled_reconcile,
)
from publisher.models import (
    Attempt,
    AuditEvent,
    Delivery,
    DeliveryState,
    Drift,
    DriftCheck,
    DriftKind,
    DriftResolution,
    utcnow,
)
from publisher.services.channel_controls import pause_channel
from publisher.services.items import create_item, retract_item
from publisher.shared import DatabaseSharedStore
from tests.support import (
    RunningSandbox,
    fresh_postgres,
    housing_notice,
    item_delivery,
    make_due,
    migrated_sqlite,
    publish_reviewed,
    running_sandbox,
    sample_publication,
    sandbox_settings,
    sealer_for_tests,
)


class World:
    def __init__(
        self,
        tmp: Path,
        url: str,
        website: RunningSandbox,
        weibo: RunningSandbox,
        sent: list[tuple[int, str, float]],
    ) -> None:
        self.website, self.weibo = website, weibo
        self.settings = sandbox_settings(tmp, url, website, weibo, http_timeout_seconds=2)
        self.db = Database(self.settings.resolved_database_url())
        for table in (Drift.__table__, DriftCheck.__table__):  # until the migration exists
            table.create(self.db.engine, checkfirst=True)  # type: ignore[attr-defined]
        shared = DatabaseSharedStore(self.db, sealer=sealer_for_tests())
        self.pool = ChannelPool(self.settings, shared)
        self.engine = DeliveryEngine(self.db, self.settings, self.pool)
        self.sent = sent  # what commits handed to the workers
        requests.post(f"{weibo.url}/_sandbox/weibo/config", json={"rate_limit": 1000}, timeout=5)

    def publish_live(self, n: int = 1) -> int:
        """An item live on the website and Weibo, through the engine."""
        fields = housing_notice(n)
        with self.db.session() as session:
            item_id = create_item(session, self.settings, fields, actor="t").id
            publish_reviewed(session, self.settings, item_id, enabled_kinds=[])
        assert self.sync(item_id, "website").state == DeliveryState.LIVE
        assert self.sync(item_id, "weibo").state == DeliveryState.LIVE
        self.sent.clear()
        return item_id

    def delivery(self, item_id: int, kind: str) -> Delivery:
        delivery: Delivery = item_delivery(self.db, item_id, kind)
        return delivery

    def sync(self, item_id: int, kind: str) -> Delivery:
        make_due(self.db, self.delivery(item_id, kind).id)
        self.engine.sync(self.delivery(item_id, kind).id, "test-worker")
        return self.delivery(item_id, kind)

    def check(self, kind: str, policy: str = "repair", limit: int = 50) -> ReconcileReport:
        return reconcile_channel(
            self.db, self.settings, self.pool, kind, limit=limit, now=utcnow(), policy=policy
        )

    def drifts(self) -> list[Drift]:
        with self.db.session() as session:
            rows = list(session.scalars(select(Drift).order_by(Drift.id)))
            session.expunge_all()
            return rows

    def count(self, model: Any, *where: Any) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    # what someone does by hand on the channels

    def destroy_weibo_post(self, status_id: str) -> None:
        resp = requests.post(
            f"{self.weibo.url}/2/statuses/destroy.json",
            data={"access_token": "sandbox", "id": status_id},
            timeout=5,
        )
        assert resp.status_code == 200, resp.text

    def live_weibo_posts(self) -> list[dict[str, Any]]:
        statuses = self.weibo.inspect()["records"]["statuses"].values()
        return [s for s in statuses if not s["deleted"]]

    def article(self, item_id: int) -> dict[str, Any]:
        record: dict[str, Any] = self.website.inspect()["records"]["articles"][f"item-{item_id}"]
        return record

    def put_article_by_hand(self, item_id: int, **changes: Any) -> None:
        sent_fields = article_payload(sample_publication())  # the protocol's fields (§5.3)
        body = {k: self.article(item_id)[k] for k in sent_fields} | changes
        raw = json.dumps(body, ensure_ascii=False).encode()
        path = f"/api/articles/item-{item_id}"
        headers = signed_headers("sandbox", "sandbox-secret", "PUT", path, raw)
        headers["Content-Type"] = "application/json"
        resp = requests.put(self.website.url + path, data=raw, headers=headers, timeout=5)
        assert resp.status_code in (200, 201), resp.text


@contextmanager
def world_on(tmp: Path, url: str, sent: list[tuple[int, str, float]]) -> Iterator[World]:
    with running_sandbox("website") as website, running_sandbox("weibo") as weibo:
        made = World(tmp, url, website, weibo, sent)
        try:
            yield made
        finally:
            made.db.dispose()


@pytest.fixture
def world(tmp_path: Path, dispatched: list[tuple[int, str, float]]) -> Iterator[World]:
    with world_on(tmp_path, migrated_sqlite(tmp_path), dispatched) as made:
        yield made


@pytest.fixture
def pg_world(tmp_path: Path, dispatched: list[tuple[int, str, float]]) -> Iterator[World]:
    with world_on(tmp_path, fresh_postgres(), dispatched) as made:
        yield made


def test_a_check_that_finds_everything_in_line_records_nothing(world: World) -> None:
    first, second = world.publish_live(1), world.publish_live(2)

    reports = [  # the beat job's body, as a worker runs it, with the default settings
        scheduled_reconcile(world.db, world.settings, world.pool, kind)
        for kind in ("website", "weibo")
    ]

    assert [(r.checked, r.in_line, r.drift, r.errors) for r in reports] == [(2, 2, [], 0)] * 2
    assert [r.policy for r in reports] == ["repair", "report"]  # Weibo reports by default
    assert world.drifts() == [] and world.sent == []
    assert world.count(DriftCheck) == 4
    for item_id in (first, second):
        assert world.delivery(item_id, "weibo").state == DeliveryState.LIVE


def test_a_weibo_post_deleted_by_hand_is_missing_and_the_engine_reposts_it(world: World) -> None:
    item_id = world.publish_live()
    before = world.delivery(item_id, "weibo")
    assert before.remote_id is not None
    world.destroy_weibo_post(before.remote_id)
    assert world.live_weibo_posts() == []

    report = world.check("weibo")

    assert (report.checked, report.repaired, report.errors) == (1, 1, 0)
    [drift] = world.drifts()
    assert (drift.kind, drift.resolution, drift.resolved_at) == (
        DriftKind.MISSING,
        DriftResolution.REPAIRED,
        None,
    )
    assert drift.details["recorded"]["remote_id"] == before.remote_id
    waiting = world.delivery(item_id, "weibo")
    assert waiting.state == DeliveryState.PENDING and waiting.remote_id is None
    assert world.sent == [(waiting.id, "weibo", 0.0)]  # handed to the workers after commit
    assert world.count(AuditEvent, AuditEvent.action == "drift.repair") == 1

    repaired = world.sync(item_id, "weibo")

    assert repaired.state == DeliveryState.LIVE
    [post] = world.live_weibo_posts()  # live again, once
    assert post["idstr"] == repaired.remote_id != before.remote_id
    assert repaired.remote_url and before.remote_url and "/" in repaired.remote_url
    last = world.count(Attempt, Attempt.delivery_id == repaired.id, Attempt.action == "create")
    assert last == 2  # the first post and the repost, each an attempt row

    again = world.check("weibo")
    assert (again.in_line, again.resolved, again.drift) == (1, 1, [])
    [closed] = world.drifts()
    assert closed.resolved_at is not None and closed.resolution == DriftResolution.REPAIRED


@pytest.mark.services
def test_on_postgresql_a_missing_post_is_found_once_and_reposted(pg_world: World) -> None:
    world = pg_world
    items = [world.publish_live(1), world.publish_live(2)]
    gone = world.delivery(items[0], "weibo")
    world.destroy_weibo_post(gone.remote_id or "")

    report = world.check("weibo", policy="report")
    again = world.check("weibo", policy="report")

    assert (report.in_line, [f.kind for f in report.drift]) == (1, ["missing"])
    assert [f.seen_before for f in again.drift] == [True]
    with world.db.session() as session:
        repair_drift(session, report.drift[0].drift_id, actor="operator")
    assert world.sync(items[0], "weibo").state == DeliveryState.LIVE
    assert len(world.live_weibo_posts()) == 2
    assert world.check("weibo").resolved == 1
    [drift] = world.drifts()
    assert drift.resolution == DriftResolution.REPAIRED and drift.resolved_at is not None


def test_a_website_page_changed_by_hand_is_changed_and_rewritten(world: World) -> None:
    item_id = world.publish_live()
    site = world.delivery(item_id, "website")
    ours = world.article(item_id)
    world.put_article_by_hand(
        item_id,
        title="（被篡改的标题）",
        content_html="<p>不是我们的内容</p>",
        content_hash="f" * 64,
    )
    assert "被篡改" in requests.get(site.remote_url or "", timeout=5).text

    report = world.check("website")

    [found] = report.drift
    assert (found.kind, found.action) == ("changed", "repaired")
    [drift] = world.drifts()
    assert drift.details["channel"]["content_hash"] == "f" * 64
    assert drift.details["recorded"]["content_hash"] == ours["content_hash"]
    assert world.delivery(item_id, "website").state == DeliveryState.PENDING

    repaired = world.sync(item_id, "website")

    assert repaired.state == DeliveryState.LIVE
    assert repaired.applied_revision_id == site.applied_revision_id
    now = world.article(item_id)
    assert (now["title"], now["content_hash"]) == (ours["title"], ours["content_hash"])
    assert "被篡改" not in requests.get(site.remote_url or "", timeout=5).text
    assert world.check("website").resolved == 1


def test_drift_reported_then_put_right_by_hand_is_closed_as_gone(world: World) -> None:
    item_id = world.publish_live()
    ours = world.article(item_id)
    world.put_article_by_hand(item_id, title="（临时改动）", content_hash="e" * 64)

    assert [f.action for f in world.check("website", policy="report").drift] == ["reported"]
    world.put_article_by_hand(item_id, title=ours["title"], content_hash=ours["content_hash"])
    later = world.check("website", policy="report")

    assert (later.in_line, later.resolved) == (1, 1)
    [drift] = world.drifts()
    assert drift.resolution == DriftResolution.GONE and drift.resolved_at is not None
    assert world.sent == []


def test_report_only_writes_nothing_keeps_the_drift_open_and_never_duplicates_it(
    world: World,
) -> None:
    item_id = world.publish_live()
    weibo = world.delivery(item_id, "weibo")
    assert weibo.remote_id is not None
    world.destroy_weibo_post(weibo.remote_id)
    calls_before = world.weibo.inspect()["counters"].get("statuses_created", 0)

    first = world.check("weibo", policy="report")
    second = world.check("weibo", policy="report")

    assert [f.seen_before for r in (first, second) for f in r.drift] == [False, True]
    assert first.repaired == second.repaired == 0
    [drift] = world.drifts()  # one open drift, seen twice
    assert (drift.kind, drift.resolution, drift.times_seen) == (
        DriftKind.MISSING,
        DriftResolution.REPORTED,
        2,
    )
    assert drift.resolved_at is None
    assert world.delivery(item_id, "weibo").state == DeliveryState.LIVE
    assert world.sent == []
    assert world.weibo.inspect()["counters"].get("statuses_created", 0) == calls_before
    assert world.live_weibo_posts() == []

    with world.db.session() as session:  # the operator decides to repair it after all
        repair_drift(session, drift.id, actor="operator")
    assert world.sync(item_id, "weibo").state == DeliveryState.LIVE
    assert len(world.live_weibo_posts()) == 1


def test_weibo_reconcile_reports_by_default_and_repairs_only_when_its_setting_says(
    world: World,
) -> None:
    item_id = world.publish_live()
    weibo = world.delivery(item_id, "weibo")
    assert weibo.remote_id is not None
    world.destroy_weibo_post(weibo.remote_id)

    report = scheduled_reconcile(world.db, world.settings, world.pool, "weibo")

    assert (report.policy, report.repaired, world.sent) == ("report", 0, [])
    [drift] = world.drifts()
    assert drift.resolution == DriftResolution.REPORTED
    assert world.delivery(item_id, "weibo").state == DeliveryState.LIVE
    assert world.live_weibo_posts() == []  # nothing posted again

    repairing = world.settings.model_copy(update={"reconcile_policies": {"weibo": "repair"}})
    again = scheduled_reconcile(world.db, repairing, world.pool, "weibo")

    assert (again.policy, again.repaired) == ("repair", 1)
    assert world.sync(item_id, "weibo").state == DeliveryState.LIVE
    assert len(world.live_weibo_posts()) == 1


def test_a_busy_channel_during_the_check_records_no_drift(world: World) -> None:
    items = [world.publish_live(1), world.publish_live(2)]
    for item_id in items:
        world.destroy_weibo_post(world.delivery(item_id, "weibo").remote_id or "")
    world.weibo.faults(error_rate=1.0)

    busy = world.check("weibo")

    assert (busy.checked, busy.errors, busy.drift, busy.repaired) == (2, 2, [], 0)
    assert "10001" in busy.error_samples[0]  # Weibo's own "system error" code
    assert world.drifts() == [] and world.sent == []
    assert [world.delivery(i, "weibo").state for i in items] == [DeliveryState.LIVE] * 2

    world.weibo.faults(error_rate=0.0, fail_next=1)  # one busy answer: the check moves on
    moved_on = world.check("weibo", policy="report")
    assert (moved_on.errors, [f.kind for f in moved_on.drift]) == (1, ["missing"])


def test_a_withdrawn_page_put_back_by_hand_reappears_and_is_withdrawn_again(
    world: World,
) -> None:
    item_id = world.publish_live()
    kept = world.article(item_id)
    with world.db.session() as session:
        retract_item(session, item_id, actor="t")
    assert world.sync(item_id, "website").state == DeliveryState.WITHDRAWN
    assert world.check("website").in_line == 1  # withdrawn and absent: in line
    world.put_article_by_hand(item_id, content_hash=kept["content_hash"])
    assert world.article(item_id)["status"] == "published"

    [found] = world.check("website").drift

    assert (found.kind, found.action) == ("reappeared", "repaired")
    assert world.delivery(item_id, "website").remote_id == f"item-{item_id}"
    assert world.sync(item_id, "website").state == DeliveryState.WITHDRAWN
    assert world.article(item_id)["status"] == "withdrawn"


def test_a_withdrawn_weibo_post_reposted_by_hand_reappears_and_is_deleted_again(
    world: World,
) -> None:
    item_id = world.publish_live()
    [post] = world.live_weibo_posts()
    with world.db.session() as session:
        retract_item(session, item_id, actor="t")
    for kind in ("website", "weibo"):
        assert world.sync(item_id, kind).state == DeliveryState.WITHDRAWN
    assert world.live_weibo_posts() == []
    resp = requests.post(  # someone posts the same text again by hand
        f"{world.weibo.url}/2/statuses/share.json",
        data={"access_token": "sandbox", "status": post["text"], "rip": "127.0.0.1"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text

    [found] = world.check("weibo").drift

    assert (found.kind, found.action) == ("reappeared", "repaired")
    assert world.delivery(item_id, "weibo").remote_id == resp.json()["idstr"]
    assert world.sync(item_id, "weibo").state == DeliveryState.WITHDRAWN
    assert world.live_weibo_posts() == []


def test_paused_channels_are_skipped_and_the_stalest_deliveries_go_first(world: World) -> None:
    first, second = world.publish_live(1), world.publish_live(2)
    ids = [world.delivery(i, "website").id for i in (first, second)]

    world.check("website", limit=1)
    world.check("website", limit=1)
    with world.db.session() as session:
        checked = sorted(session.execute(select(DriftCheck.checked_at, DriftCheck.delivery_id)))
    assert [delivery_id for _, delivery_id in checked] == ids  # one each, oldest first

    with world.db.session() as session:
        pause_channel(session, "weibo", "maintenance", actor="t")
    paused = world.check("weibo")
    assert paused.checked == 0 and paused.skipped == "paused: maintenance"


# --- the operator's views: API and CLI -----------------------------------------------------------


def test_the_api_lists_drift_and_runs_a_check_for_operators(world: World) -> None:
    item_id = world.publish_live()
    weibo = world.delivery(item_id, "weibo")
    assert weibo.remote_id is not None
    world.destroy_weibo_post(weibo.remote_id)
    app = create_app(world.settings)
    with world.db.session() as session:
        department_of = {"admin": None, "supervisor": None, "editor": "sgj", "operator": None}
        roles = {
            role: {"Authorization": f"Bearer {create_token(session, role, department_of[role])}"}
            for role in ("admin", "supervisor", "editor", "operator")
        }
    admin = roles["admin"]
    try:
        with TestClient(app) as client:
            denied = client.post(
                "/api/v1/drift/check", json={"channel": "weibo"}, headers=roles["supervisor"]
            )
            assert denied.status_code == 403
            bad = client.post("/api/v1/drift/check", json={"channel": "fax"}, headers=admin)
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "channel"

            resp = client.post(
                "/api/v1/drift/check",
                json={"channel": "weibo", "item": item_id, "policy": "report"},
                headers=roles["operator"],
            )
            assert resp.status_code == 200, resp.text
            [report] = resp.json()["reports"]
            assert report["channel"] == "weibo" and report["drift"][0]["kind"] == "missing"

            listed = client.get("/api/v1/drift?channel=weibo", headers=roles["supervisor"])
            assert listed.status_code == 200
            [row] = listed.json()["results"]
            assert (row["item_id"], row["kind"], row["open"]) == (item_id, "missing", True)
            # An editor of 社管局 sees drift of their department's items only (this is 建设局's).
            mine = client.get("/api/v1/drift", headers=roles["editor"])
            assert mine.status_code == 200 and mine.json()["results"] == []

            repaired = client.post(f"/api/v1/drift/{row['id']}/repair", headers=admin)
            assert repaired.status_code == 202 and repaired.json()["resolution"] == "repaired"
            again = client.post(f"/api/v1/drift/{row['id']}/repair", headers=admin)
            assert again.status_code == 409  # the delivery is pending now, not live
    finally:
        db_module.reset_database()


def test_the_cli_checks_lists_and_repairs(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    item_id = world.publish_live()
    weibo = world.delivery(item_id, "weibo")
    assert weibo.remote_id is not None
    world.destroy_weibo_post(weibo.remote_id)
    env = {
        "DATABASE_URL": world.settings.resolved_database_url(),
        "VAR_DIR": str(world.settings.var_dir),
        "WEBSITE_API_BASE": world.website.url,
        "WEBSITE_APP_ID": "sandbox",
        "WEBSITE_SECRET": "sandbox-secret",
        "WEIBO_API_BASE": world.weibo.url,
        "WEIBO_ACCESS_TOKEN": "sandbox",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"PUBLISHER_{name}", value)
    reset_settings()
    db_module.reset_database()
    runner = CliRunner()
    try:
        checked = runner.invoke(drift_cli, ["check", "--policy", "report"])
        assert checked.exit_code == 0, checked.output
        assert f"偏差 1：信息 {item_id} 在微博上缺失，已报告" in checked.output.splitlines()

        listed = runner.invoke(drift_cli, ["list", "--channel", "weibo"])
        assert listed.exit_code == 0 and "missing 缺失" in listed.output
        assert "（共 1 条，显示 1 条）" in listed.output

        [drift] = world.drifts()
        repaired = runner.invoke(drift_cli, ["repair", str(drift.id)])
        assert repaired.exit_code == 0, repaired.output
        assert world.delivery(item_id, "weibo").state == DeliveryState.PENDING
        missing = runner.invoke(drift_cli, ["repair", "999"])
        assert (missing.exit_code, missing.output) == (1, "错误：偏差记录 999 不存在\n")
    finally:
        db_module.reset_database()
        reset_settings()
