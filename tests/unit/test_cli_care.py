"""What the CLI shows staff of deliveries: URLs whole, times in Beijing time to the second, and
a reason (with until when) for every delivery that is not live — through the real CLI, the
real delivery engine and the website and catalogue sandboxes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.publication import ChannelPool
from publisher.i18n.deliveries import beijing, state_name, waiting_reason
from publisher.models import Delivery, DeliveryState, WaitReason
from publisher.shared import shared_store
from tests.support import RunningSandbox, approve_all, item_delivery, running_sandbox

BEIJING_TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
CREATE = [
    "items", "create", "--title", "关于开展2026年义诊活动的通知", "--domain", "health",
    "--department", "wjj", "--formed-on", "2026-11-20", "--body-html", "<p>每周六上午。</p>",
]  # fmt: skip


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def sandboxes(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, RunningSandbox]]:
    with running_sandbox("website") as website, running_sandbox("catalogue") as catalogue:
        for box in (website, catalogue):
            prefix = f"PUBLISHER_{box.kind.upper()}"
            monkeypatch.setenv(f"{prefix}_API_BASE", box.url)
            monkeypatch.setenv(f"{prefix}_APP_ID", "sandbox")
            monkeypatch.setenv(f"{prefix}_SECRET", "sandbox-secret")
        monkeypatch.setenv("PUBLISHER_HTTP_TIMEOUT_SECONDS", "1")
        reset_settings()
        yield {"website": website, "catalogue": catalogue}


def engine() -> DeliveryEngine:
    settings = get_settings()
    return DeliveryEngine(get_database(), settings, ChannelPool(settings, shared_store(settings)))


def published() -> None:
    assert run(*CREATE).exit_code == 0
    with get_database().session() as session:
        approve_all(session, 1)
    result = run("items", "publish", "1")
    assert result.exit_code == 0, result.output


def sync(kind: str) -> Delivery:
    delivery = item_delivery(get_database(), 1, kind)
    engine().sync(delivery.id, "test-worker")
    return item_delivery(get_database(), 1, kind)


def reason_of(kind: str) -> str:
    """The reason column of `kind`'s line in `jobs list` (the last column)."""
    listing = run("jobs", "list", "--item", "1").output
    line = next(line for line in listing.splitlines() if f" {kind} " in line)
    return line.split("  ")[-1].strip()


def test_urls_are_whole_and_times_beijing_time_to_the_second(
    sandboxes: dict[str, RunningSandbox],
) -> None:
    published()
    website = sync("website")
    assert website.state == DeliveryState.LIVE and website.remote_url
    # A long address, as a real CMS gives one: no column cuts it.
    long_url = website.remote_url + "?from=" + "songshanlake-" * 6 + "end"
    with get_database().session() as session:
        session.execute(
            update(Delivery).where(Delivery.id == website.id).values(remote_url=long_url)
        )
    shown = run("items", "show", "1").output
    assert long_url in shown and "…" not in shown
    assert long_url in run("jobs", "show", str(website.id)).output

    # The catalogue, woken by the website going live, is due: at 03:30:05.123456 UTC.
    catalogue = item_delivery(get_database(), 1, "catalogue")
    due = datetime(2026, 12, 2, 3, 30, 5, 123456, tzinfo=UTC)
    with get_database().session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == catalogue.id)
            .values(state=DeliveryState.RETRYING, next_attempt_at=due)
        )
    detail = run("jobs", "show", str(catalogue.id)).output
    assert re.search(r"^下次尝试\s+2026-12-02 11:30:05$", detail, re.M), detail
    assert "2026-12-02 11:30:05" in run("jobs", "list").output
    assert "+00:00" not in detail and ".123456" not in detail and "T03:30" not in detail
    published_at = re.search(r"^发布时间\s+(.+)$", shown, re.M)
    assert published_at and re.fullmatch(BEIJING_TIME, published_at.group(1))


def test_a_paused_channel_and_the_website_wait_say_so_and_until_when(
    sandboxes: dict[str, RunningSandbox],
) -> None:
    assert run("channels", "pause", "website", "--reason", "维护").exit_code == 0
    published()
    assert sync("website").wait_reason == WaitReason.PAUSED
    reason = reason_of("website")
    assert re.fullmatch(rf"渠道已暂停，恢复后继续（{BEIJING_TIME} 再检查）", reason), reason
    assert reason_of("catalogue") == "等待网站页面生成（本渠道链接到网站文章）"


def test_a_freeze_says_so(sandboxes: dict[str, RunningSandbox]) -> None:
    published()
    assert run("freeze", "start", "--reason", "换届").exit_code == 0
    assert sync("website").wait_reason == WaitReason.FREEZE
    assert re.fullmatch(rf"发布已冻结，解除后继续（{BEIJING_TIME} 再检查）", reason_of("website"))


def test_a_retry_names_the_channels_error_and_when_it_tries_again(
    sandboxes: dict[str, RunningSandbox],
) -> None:
    published()
    sandboxes["website"].faults(fail_next=1)
    website = sync("website")
    assert website.state == DeliveryState.RETRYING
    reason = reason_of("website")
    own = f"{website.last_error_code} {website.last_error_message}".strip()
    assert reason == (
        f"上次失败：渠道暂时不可用（渠道原文：{own}）；{beijing(website.next_attempt_at)} 重试"
    )
    shown = run("jobs", "show", str(website.id)).output
    assert f"错误          渠道暂时不可用（渠道原文：{own}）" in shown
    error = f"渠道暂时不可用（渠道原文：{re.escape(own)}）"
    attempt = rf"^1\s+create 创建\s+待重试\s+{BEIJING_TIME}\s+\d+\s+{error}$"
    assert re.search(attempt, shown, re.M), shown


def test_an_unknown_outcome_says_it_looks_the_channel_up_first(
    sandboxes: dict[str, RunningSandbox],
) -> None:
    published()
    sandboxes["website"].faults(timeout_next_writes=1, hang_seconds=3)
    assert sync("website").state == DeliveryState.UNKNOWN
    reason = reason_of("website")
    assert re.fullmatch(rf"不确定渠道是否已收到，{BEIJING_TIME} 先向渠道核实再决定是否重发", reason)


def test_refused_credentials_wait_for_reauthorisation(
    sandboxes: dict[str, RunningSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    published()
    monkeypatch.setenv("PUBLISHER_WEBSITE_SECRET", "not-the-sandboxes")
    reset_settings()
    assert sync("website").wait_reason == WaitReason.REAUTH
    reason = reason_of("website")
    assert re.fullmatch(
        rf"渠道需要重新授权（运维人员设置新令牌后继续，{BEIJING_TIME} 再检查）", reason
    )


NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LATER = (NOW + timedelta(minutes=30)).isoformat()  # 11:30:00 in Beijing


@pytest.mark.parametrize("state", [s.value for s in DeliveryState])
def test_every_state_but_live_withdrawn_and_cancelled_has_a_reason(state: str) -> None:
    view = {"state": state, "next_attempt_at": LATER, "wait_reason": None, "last_error": None}
    reason = waiting_reason(view, now=NOW)
    if state in ("live", "withdrawn", "cancelled"):
        assert reason is None
        return
    assert reason and reason != state_name(state), state
    if state in ("retrying", "deferred", "unknown", "confirming"):
        assert "2026-12-02 11:30:00" in reason, reason
    if state == "pending":  # due later than now: scheduled
        assert reason == "已排定，2026-12-02 11:30:00 开始处理"


@pytest.mark.parametrize("wait", [w.value for w in WaitReason])
def test_every_wait_reason_reads_in_chinese(wait: str) -> None:
    view = {"state": "deferred", "next_attempt_at": LATER, "wait_reason": wait, "last_error": None}
    reason = waiting_reason(view, now=NOW)
    assert reason and re.search(r"[\u4e00-\u9fff]", reason), reason
    if wait != "website":
        assert "2026-12-02 11:30:00" in reason, reason
