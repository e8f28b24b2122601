"""The operator's console pages over HTTP (publisher/console/operations.py, deliveries.py,
drift.py, charts.py): the dashboard's figures are the store's, a delivery's page shows the
channel's own error text, each action does what the API's does (and is refused to editors
and without the CSRF token), and the charts draw the seeded attempts."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.base import token_key
from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import Database
from publisher.models import (
    Attempt,
    AttemptOutcome,
    AuditEvent,
    Channel,
    Delivery,
    DeliveryState,
    Drift,
    DriftKind,
    DriftResolution,
    Freeze,
    Item,
    Revision,
    WaitReason,
    WeChatDigest,
    WeChatDigestState,
)
from publisher.services.items import create_item
from publisher.services.queue_figures import hour_of
from publisher.shared import shared_store
from tests.console.support import session_for
from tests.support import (
    TEST_SECRET_KEY,
    RunningSandbox,
    item_delivery,
    item_fields,
    make_due,
    publish_reviewed,
    running_sandbox,
    sandbox_engine,
)

NOW = datetime.now(UTC)


def new_delivery(
    session: Any, settings: Settings, kind: str, state: DeliveryState, **values: Any
) -> Delivery:
    """A delivery of a new item (one item per delivery: an item has one per channel)."""
    item = create_item(session, settings, item_fields(), actor="test")
    revision = session.scalars(select(Revision.id).where(Revision.item_id == item.id)).one()
    delivery = Delivery(
        item_id=item.id,
        channel_kind=kind,
        desired_revision_id=revision,
        state=state,
        **values,
    )
    session.add(delivery)
    session.flush()
    return delivery


def attempt(
    session: Any, delivery: Delivery, outcome: AttemptOutcome, finished: datetime, **values: Any
) -> None:
    session.add(
        Attempt(
            delivery_id=delivery.id,
            number=1,
            action="create",
            started_at=finished - timedelta(seconds=1),
            finished_at=finished,
            outcome=outcome,
            **values,
        )
    )


def operator_browser(
    new_browser: Callable[[], TestClient], database: Database
) -> tuple[TestClient, str]:
    browser = new_browser()
    return browser, session_for(browser, database, "operator1")


def card(html: str, kind: str) -> str:
    found = re.search(rf'data-channel="{kind}".*?</section>', html, re.S)
    assert found, f"no card for {kind}"
    return found.group(0)


def figure(html: str, kind: str, state: str) -> int:
    found = re.search(rf'data-state="{state}">(\d+)<', card(html, kind))
    assert found, f"no {state} figure for {kind}"
    return int(found.group(1))


def svg(html: str, chart_id: str) -> ET.Element:
    found = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', html, re.S)
    assert found, f"no chart {chart_id}"
    return ET.fromstring(found.group(0))


SVG = "{http://www.w3.org/2000/svg}"


# -- the dashboard --------------------------------------------------------------------------


def test_the_dashboards_figures_are_the_stores(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    with database.session() as session:
        for _ in range(2):
            new_delivery(session, publisher_env, "website", DeliveryState.PENDING)
        failed = new_delivery(session, publisher_env, "wechat", DeliveryState.FAILED)
        until = NOW + timedelta(hours=2)
        for _ in range(3):
            new_delivery(
                session,
                publisher_env,
                "weibo",
                DeliveryState.DEFERRED,
                next_attempt_at=until,
                wait_reason=WaitReason.PAUSED.value,
            )
        live = new_delivery(session, publisher_env, "catalogue", DeliveryState.LIVE)
        attempt(session, live, AttemptOutcome.OK, NOW - timedelta(minutes=10))
        attempt(session, failed, AttemptOutcome.FAILED, NOW - timedelta(minutes=5))
        session.add(Channel(kind="weibo", paused=True, paused_reason="等待微博解封"))
    browser, _ = operator_browser(new_browser, database)
    page = browser.get("/console/operations")
    assert page.status_code == 200, page.text
    html = page.text
    assert figure(html, "website", "pending") == 2
    assert figure(html, "wechat", "failed") == 1
    assert figure(html, "weibo", "deferred") == 3
    assert figure(html, "catalogue", "running") == 0
    weibo = card(html, "weibo")
    assert "已暂停" in weibo and "等待微博解封" in weibo
    assert "渠道已暂停 3" in weibo, "why the deferred ones wait"
    assert "已延后的投递最早于" in weibo
    catalogue = card(html, "catalogue")
    assert re.search(r'data-figure="last-hour">1<', catalogue), "one success in the last hour"
    assert re.search(r'data-figure="last-hour">0<', card(html, "wechat")), "a failure is not one"
    assert 'data-figure="last-success">—<' not in catalogue
    assert 'data-figure="last-success">—<' in card(html, "website")
    # Channels not configured in this test say so.
    assert "未启用" in card(html, "website")
    # The polled fragment answers 204 while nothing changed, the cards once something did.
    digest = re.search(r"/console/operations/queue\?seen=([0-9a-f]+)", html)
    assert digest
    same = browser.get(f"/console/operations/queue?seen={digest.group(1)}")
    assert same.status_code == 204
    with database.session() as session:
        new_delivery(session, publisher_env, "website", DeliveryState.PENDING)
    changed = browser.get(f"/console/operations/queue?seen={digest.group(1)}")
    assert changed.status_code == 200
    assert figure(changed.text, "website", "pending") == 3


def test_the_push_quota_left_counts_todays_mass_sends(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    browser, _ = operator_browser(new_browser, database)
    before = card(browser.get("/console/operations").text, "wechat")
    assert re.search(r'data-figure="push-left">1<', before)
    beijing_today = (NOW + timedelta(hours=8)).date()
    with database.session() as session:
        session.add(
            WeChatDigest(
                day=beijing_today,
                audience="all",
                clientmsgid="today",
                state=WeChatDigestState.SENT,
            )
        )
    after = card(browser.get("/console/operations").text, "wechat")
    assert re.search(r'data-figure="push-left">0<', after)


def test_the_workers_fragment_says_plainly_that_it_cannot_ask_on_the_embedded_broker(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    browser, _ = operator_browser(new_browser, database)
    answer = browser.get("/console/operations/workers")
    assert answer.status_code == 200
    assert "不支持向工作进程广播询问" in answer.text


# -- the charts -----------------------------------------------------------------------------


def test_the_charts_draw_the_seeded_attempts_and_times_to_live(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    two_hours_ago = hour_of(NOW) - timedelta(hours=2)
    with database.session() as session:
        website = [
            new_delivery(session, publisher_env, "website", DeliveryState.LIVE) for _ in range(3)
        ]
        for delivery in website:
            attempt(session, delivery, AttemptOutcome.OK, two_hours_ago + timedelta(minutes=10))
        attempt(session, website[0], AttemptOutcome.RETRY, two_hours_ago + timedelta(minutes=20))
        attempt(session, website[1], AttemptOutcome.DEFERRED, two_hours_ago + timedelta(minutes=5))
        # Older than the window: not drawn.
        attempt(session, website[2], AttemptOutcome.FAILED, NOW - timedelta(hours=30))
        # Publish to live: 60 s, 120 s, 600 s on the catalogue.
        for seconds in (60, 120, 600):
            delivery = new_delivery(session, publisher_env, "catalogue", DeliveryState.LIVE)
            item = session.get(Item, delivery.item_id)
            item.published_at = NOW - timedelta(hours=1)
            delivery.live_at = item.published_at + timedelta(seconds=seconds)
    browser, _ = operator_browser(new_browser, database)
    html = browser.get("/console/operations").text

    chart = svg(html, "chart-hourly-website")
    assert chart.find(f"{SVG}title") is not None and chart.find(f"{SVG}desc") is not None
    assert "成功 3 次，失败 1 次，失败率 25.0%" in (chart.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    bars = {g.get("data-hour"): g for g in chart.iter(f"{SVG}g") if g.get("class") == "bar"}
    assert len(bars) == 24
    drawn = {hour: g for hour, g in bars.items() if g.find(f"{SVG}rect") is not None}
    assert list(drawn) == [two_hours_ago.isoformat()], "only the hour with attempts has a bar"
    bar = drawn[two_hours_ago.isoformat()]
    assert (bar.get("data-succeeded"), bar.get("data-failed")) == ("3", "1")
    ok = bar.find(f"{SVG}rect[@class='succeeded']")
    bad = bar.find(f"{SVG}rect[@class='failed']")
    assert ok is not None and bad is not None
    assert float(ok.get("height", 0)) == pytest.approx(3 * float(bad.get("height", 0)))
    assert bad.get("fill") == "url(#chart-hourly-website-hatch)", "failures are hatched"
    assert float(bad.get("y", 0)) + float(bad.get("height", 0)) == pytest.approx(
        float(ok.get("y", 0))
    ), "stacked on the successes"

    rates = svg(html, "chart-failure-rate")
    values = [r.get("data-value") for r in rates.iter(f"{SVG}rect") if r.get("class") == "rate"]
    assert values == ["0.25", "0", "0", "0"], "website, catalogue, wechat, weibo"
    assert "25.0%" in "".join(rates.itertext())

    ttl = svg(html, "chart-time-to-live")
    medians = [r.get("data-value") for r in ttl.iter(f"{SVG}rect") if r.get("class") == "median"]
    p90s = [r.get("data-value") for r in ttl.iter(f"{SVG}rect") if r.get("class") == "p90"]
    assert medians[1] == "120" and p90s[1] == "600", "the catalogue's median and p90"
    assert "中位数 2 分 0 秒" in "".join(ttl.itertext())
    assert medians[0] == "0" and "—" in "".join(ttl.itertext()), "no website data: no bar"
    # The data tables beside the charts.
    assert "<details>" in html and "25.0%" in html


# -- a delivery's page, with WeChat's own error text -------------------------------------------


@pytest.fixture
def sandboxes() -> Iterator[tuple[RunningSandbox, RunningSandbox]]:
    with running_sandbox("website") as website, running_sandbox("wechat") as wechat:
        yield website, wechat


def on_sandboxes(monkeypatch: pytest.MonkeyPatch, *boxes: RunningSandbox, **more: str) -> Settings:
    """The test's settings with the sandboxes as channels (and `more` PUBLISHER_ variables)."""
    credentials = {
        "website": {"APP_ID": "sandbox", "SECRET": "sandbox-secret"},
        "wechat": {"APPID": "sandbox", "SECRET": "sandbox-secret"},
    }
    for box in boxes:
        monkeypatch.setenv(f"PUBLISHER_{box.kind.upper()}_API_BASE", box.url)
        for name, value in credentials[box.kind].items():
            monkeypatch.setenv(f"PUBLISHER_{box.kind.upper()}_{name}", value)
    for name, value in more.items():
        monkeypatch.setenv(f"PUBLISHER_{name}", value)
    reset_settings()
    return get_settings()


def test_a_failed_wechat_delivery_shows_wechats_own_text_and_goes_live_once_retried(
    publisher_env: Settings,
    database: Database,
    sandboxes: tuple[RunningSandbox, RunningSandbox],
    monkeypatch: pytest.MonkeyPatch,
    dispatched: list[tuple[int, str, float]],
) -> None:
    website, wechat = sandboxes
    settings = on_sandboxes(monkeypatch, website, wechat)
    engine = sandbox_engine(settings)
    # WeChat refuses every new thumb material (45034): a permanent refusal of the cover.
    requests.post(f"{wechat.url}/_sandbox/wechat", json={"material_cap": 0}, timeout=5)
    with database.session() as session:
        item_id = create_item(
            session, settings, item_fields(channels=["website", "wechat"]), actor="t"
        ).id
    with database.session() as session:
        publish_reviewed(session, settings, item_id, enabled_kinds=["website", "wechat"])
    for kind in ("website", "wechat"):
        delivery = item_delivery(database, item_id, kind)
        make_due(database, delivery.id)
        engine.sync(delivery.id, "test-worker")
    failed = item_delivery(database, item_id, "wechat")
    assert failed.state == DeliveryState.FAILED, failed.explanation

    browser = TestClient(create_app(settings), follow_redirects=False)
    csrf = session_for(browser, database, "operator1")
    page = browser.get(f"/console/deliveries/{failed.id}")
    assert page.status_code == 200
    said = re.search(r'data-said="code">([^<]*)<.*?data-said="message">([^<]*)<', page.text, re.S)
    assert said and said.groups() == ("45034", "media file count is out of limit")
    assert "微信拒绝了该请求" in page.text, "our explanation beside WeChat's words"
    assert "渠道拒绝了这条内容或请求" in page.text, "what a permanent refusal means"
    assert (
        '<td class="said"><code>45034</code> <code>media file count is out of limit</code>'
        in page.text
    )

    requests.post(f"{wechat.url}/_sandbox/wechat", json={"material_cap": 1000}, timeout=5)
    retried = browser.post(f"/console/deliveries/{failed.id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/console/deliveries/{failed.id}?done=retried"
    assert (failed.id, "wechat") in [(i, k) for i, k, _ in dispatched]
    assert item_delivery(database, item_id, "wechat").state == DeliveryState.PENDING
    engine.sync(failed.id, "test-worker")
    while (now := item_delivery(database, item_id, "wechat")).state != DeliveryState.LIVE:
        assert now.state in (DeliveryState.CONFIRMING, DeliveryState.PENDING), now.explanation
        make_due(database, failed.id)
        engine.sync(failed.id, "test-worker")
    page = browser.get(f"/console/deliveries/{failed.id}?done=retried")
    assert 'data-state="live"' in page.text and "已重新排队" in page.text
    engine.database.dispose()


# -- each action, as the API does it ---------------------------------------------------------


def audited(database: Database, action: str) -> list[AuditEvent]:
    with database.session() as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        session.expunge_all()
        return rows


def test_pause_and_resume_a_channel(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    browser, csrf = operator_browser(new_browser, database)
    paused = browser.post(
        "/console/channels/weibo/pause", data={"csrf_token": csrf, "reason": "账号维护"}
    )
    assert paused.status_code == 303 and paused.headers["location"].endswith("done=paused")
    with database.session() as session:
        row = session.get(Channel, "weibo")
        assert row is not None and row.paused and row.paused_reason == "账号维护"
    assert [e.actor for e in audited(database, "channel.pause")] == ["operator1"]
    page = browser.get(paused.headers["location"]).text
    assert "渠道已暂停" in page and "恢复微博" in page
    resumed = browser.post("/console/channels/weibo/resume", data={"csrf_token": csrf})
    assert resumed.status_code == 303
    with database.session() as session:
        row = session.get(Channel, "weibo")
        assert row is not None and not row.paused
    unknown = browser.post("/console/channels/fax/pause", data={"csrf_token": csrf})
    assert unknown.status_code == 404 and "页面不存在" in unknown.text


def test_retry_all_failed_asks_first_then_starts_them_again(
    publisher_env: Settings,
    database: Database,
    new_browser: Callable[[], TestClient],
    dispatched: list[tuple[int, str, float]],
) -> None:
    with database.session() as session:
        ids = [
            new_delivery(session, publisher_env, "website", DeliveryState.FAILED).id
            for _ in range(2)
        ]
        other = new_delivery(session, publisher_env, "weibo", DeliveryState.FAILED).id
    browser, csrf = operator_browser(new_browser, database)
    asked = browser.post("/console/channels/website/retry-failed", data={"csrf_token": csrf})
    assert asked.status_code == 200 and "请确认" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    with database.session() as session:
        assert session.get(Delivery, ids[0]).state == DeliveryState.FAILED  # type: ignore[union-attr]
    done = browser.post(
        "/console/channels/website/retry-failed", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("n=2")
    with database.session() as session:
        states = [session.get(Delivery, i).state for i in (*ids, other)]  # type: ignore[union-attr]
    assert states == [DeliveryState.PENDING, DeliveryState.PENDING, DeliveryState.FAILED]
    assert sorted(i for i, _, _ in dispatched) == sorted(ids)
    assert "已重新排队 2 条失败的投递" in browser.get(done.headers["location"]).text


def test_a_channel_token_is_stored_sealed_and_never_echoed_logged_or_audited(
    publisher_env: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = on_sandboxes(monkeypatch, SECRET_KEY=TEST_SECRET_KEY)
    browser = TestClient(create_app(settings), follow_redirects=False)
    csrf = session_for(browser, database, "operator1")
    token = "2.00weibo-new-token-" + "x" * 20
    with caplog.at_level(logging.DEBUG):
        saved = browser.post(
            "/console/channels/weibo/token", data={"csrf_token": csrf, "access_token": token}
        )
        assert saved.status_code == 303, saved.text
        page = browser.get(saved.headers["location"])
    assert shared_store(settings, database).get(token_key("weibo")) == token
    assert token not in page.text and token not in saved.text
    assert token not in caplog.text
    events = audited(database, "channel.credentials")
    assert len(events) == 1 and token not in str(events[0].details)
    assert 'type="password"' in page.text
    # Only Weibo takes a token at run time; an empty one is refused beside the field.
    website = browser.post(
        "/console/channels/website/token", data={"csrf_token": csrf, "access_token": token}
    )
    assert website.status_code == 422 and "token" in website.text
    assert token not in website.text
    empty = browser.post("/console/channels/weibo/token", data={"csrf_token": csrf})
    assert empty.status_code == 422 and "请填写访问令牌" in empty.text


def test_freeze_needs_a_reason_and_a_confirmation_and_lifts(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    browser, csrf = operator_browser(new_browser, database)
    missing = browser.post("/console/freeze", data={"csrf_token": csrf, "reason": "  "})
    assert missing.status_code == 422
    assert re.search(r'id="freeze-error">请填写理由', missing.text)
    asked = browser.post("/console/freeze", data={"csrf_token": csrf, "reason": "哀悼日"})
    assert asked.status_code == 200 and "哀悼日" in asked.text and "请确认" in asked.text
    frozen = browser.post(
        "/console/freeze", data={"csrf_token": csrf, "reason": "哀悼日", "confirm": "yes"}
    )
    assert frozen.status_code == 303
    with database.session() as session:
        active = session.scalars(select(Freeze).where(Freeze.lifted_at.is_(None))).one()
        assert active.reason == "哀悼日" and active.started_by == "operator1"
    assert "全局冻结中：哀悼日" in browser.get("/console/operations").text
    lifted = browser.post("/console/freeze/lift", data={"csrf_token": csrf, "confirm": "yes"})
    assert lifted.status_code == 303
    with database.session() as session:
        assert session.scalars(select(Freeze).where(Freeze.lifted_at.is_(None))).first() is None
    again = browser.post("/console/freeze/lift", data={"csrf_token": csrf, "confirm": "yes"})
    assert again.status_code == 409, "no freeze in force"


def test_cancel_mark_posted_and_adopt_a_delivery(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    with database.session() as session:
        to_cancel = new_delivery(session, publisher_env, "website", DeliveryState.FAILED).id
        to_mark = new_delivery(session, publisher_env, "weibo", DeliveryState.UNKNOWN).id
    browser, csrf = operator_browser(new_browser, database)
    asked = browser.post(f"/console/deliveries/{to_cancel}/cancel", data={"csrf_token": csrf})
    assert asked.status_code == 200 and "请确认" in asked.text
    cancelled = browser.post(
        f"/console/deliveries/{to_cancel}/cancel",
        data={"csrf_token": csrf, "reason": "重复", "confirm": "yes"},
    )
    assert cancelled.status_code == 303
    with database.session() as session:
        assert session.get(Delivery, to_cancel).state == DeliveryState.CANCELLED  # type: ignore[union-attr]
    again = browser.post(
        f"/console/deliveries/{to_cancel}/cancel", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert again.status_code == 409 and "cannot be cancelled" in again.text

    no_reason = browser.post(
        f"/console/deliveries/{to_mark}/mark-posted", data={"csrf_token": csrf}
    )
    assert no_reason.status_code == 422
    assert re.search(r'id="mark-reason-error">请填写理由', no_reason.text)
    marked = browser.post(
        f"/console/deliveries/{to_mark}/mark-posted",
        data={
            "csrf_token": csrf,
            "reason": "在微博上看到了",
            "remote_id": "5012345",
            "confirm": "yes",
        },
    )
    assert marked.status_code == 303
    with database.session() as session:
        row = session.get(Delivery, to_mark)
        assert row is not None and row.state == DeliveryState.LIVE and row.remote_id == "5012345"
    assert len(audited(database, "delivery.mark_posted")) == 1

    # Website is not configured in this test: the channel cannot be asked, said beside the form.
    with database.session() as session:
        to_adopt = new_delivery(session, publisher_env, "website", DeliveryState.FAILED).id
    refused = browser.post(
        f"/console/deliveries/{to_adopt}/adopt", data={"csrf_token": csrf, "remote_id": "a1"}
    )
    assert refused.status_code == 409 and 'id="adopt-error"' in refused.text


def test_the_deliveries_table_filters_and_refuses_bad_filters_beside_the_field(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    with database.session() as session:
        wanted = new_delivery(session, publisher_env, "wechat", DeliveryState.FAILED)
        wanted.last_error_code, wanted.last_error_message = "45003", "title size out of limit"
        new_delivery(session, publisher_env, "wechat", DeliveryState.LIVE)
        new_delivery(session, publisher_env, "website", DeliveryState.FAILED)
        wanted_id = wanted.id
    browser, _ = operator_browser(new_browser, database)
    page = browser.get("/console/deliveries?channel=wechat&state=failed&department=sgj")
    assert page.status_code == 200
    assert re.findall(r'data-delivery="(\d+)"', page.text) == [str(wanted_id)]
    assert "title size out of limit" in page.text and "社会" not in page.text
    assert "（sgj）" in page.text
    today = (NOW + timedelta(hours=8)).date()
    dated = browser.get(f"/console/deliveries?since={today}&until={today}")
    assert len(re.findall(r'data-delivery="', dated.text)) == 3
    before = browser.get(f"/console/deliveries?until={today - timedelta(days=2)}")
    assert re.findall(r'data-delivery="', before.text) == []
    other = browser.get("/console/deliveries?department=jyj")
    assert re.findall(r'data-delivery="', other.text) == []
    bad = browser.get("/console/deliveries?channel=fax&since=yesterday")
    assert bad.status_code == 422
    assert 'id="f-channel-error">没有这个渠道' in bad.text
    assert 'id="f-since-error">日期格式应为 YYYY-MM-DD' in bad.text


def test_drift_repair_and_a_check_now(
    publisher_env: Settings,
    database: Database,
    new_browser: Callable[[], TestClient],
    dispatched: list[tuple[int, str, float]],
) -> None:
    with database.session() as session:
        delivery = new_delivery(session, publisher_env, "website", DeliveryState.LIVE)
        drift = Drift(
            delivery_id=delivery.id,
            item_id=delivery.item_id,
            channel_kind="website",
            kind=DriftKind.MISSING,
            resolution=DriftResolution.REPORTED,
        )
        session.add(drift)
        session.flush()
        drift_id, delivery_id = drift.id, delivery.id
    browser, csrf = operator_browser(new_browser, database)
    page = browser.get("/console/drift")
    assert f'data-drift="{drift_id}"' in page.text and "渠道上已不存在" in page.text
    repaired = browser.post(f"/console/drift/{drift_id}/repair", data={"csrf_token": csrf})
    assert repaired.status_code == 303
    with database.session() as session:
        assert session.get(Drift, drift_id).resolution == DriftResolution.REPAIRED  # type: ignore[union-attr]
    assert delivery_id in [i for i, _, _ in dispatched]
    assert [e.actor for e in audited(database, "drift.repair")] == ["operator1"]
    checked = browser.post("/console/drift/check", data={"csrf_token": csrf, "channel": "website"})
    assert checked.status_code == 200 and 'data-report="website"' in checked.text
    missing = browser.post("/console/drift/check", data={"csrf_token": csrf, "item": "999999"})
    assert missing.status_code == 422 and 'id="check-item-error"' in missing.text


# -- refused to editors, and without the CSRF token ---------------------------------------------


def test_editors_get_the_403_page_and_nothing_changes(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    with database.session() as session:
        failed = new_delivery(session, publisher_env, "website", DeliveryState.FAILED).id
    editor = new_browser()
    csrf = session_for(editor, database, "editor1")
    for path, data in (
        ("/console/channels/weibo/pause", {"reason": "x"}),
        (f"/console/deliveries/{failed}/retry", {}),
        ("/console/freeze", {"reason": "x", "confirm": "yes"}),
    ):
        answer = editor.post(path, data={"csrf_token": csrf, **data})
        assert answer.status_code == 403 and "无权访问" in answer.text, path
    assert editor.get("/console/operations").status_code == 403
    with database.session() as session:
        assert session.get(Channel, "weibo") is None or not session.get(Channel, "weibo").paused  # type: ignore[union-attr]
        assert session.get(Delivery, failed).state == DeliveryState.FAILED  # type: ignore[union-attr]
        assert session.scalars(select(Freeze)).first() is None


def test_an_action_without_the_csrf_token_is_refused(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    with database.session() as session:
        failed = new_delivery(session, publisher_env, "website", DeliveryState.FAILED).id
    browser, _ = operator_browser(new_browser, database)
    for path in ("/console/channels/weibo/pause", f"/console/deliveries/{failed}/retry"):
        answer = browser.post(path, data={"reason": "x"})
        assert answer.status_code == 403 and "表单已失效" in answer.text, path
    with database.session() as session:
        assert session.get(Channel, "weibo") is None
        assert session.get(Delivery, failed).state == DeliveryState.FAILED  # type: ignore[union-attr]
