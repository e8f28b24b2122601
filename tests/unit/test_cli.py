"""The `publisher` CLI through click's CliRunner, on a migrated SQLite database."""

from __future__ import annotations

import os
import queue
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from publisher.api.app import create_app
from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.publication import ChannelPool
from publisher.metrics import metrics_registry, render_metrics
from publisher.services.queries import item_view
from publisher.shared import shared_store
from tests.support import approve_all, dispatching_to, running_sandbox

FORMED = (date.today() - timedelta(days=1)).isoformat()
# "Today" for the store is the organisation's day (Settings.timezone, Beijing).
BEIJING_TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


def enable(monkeypatch: pytest.MonkeyPatch, kind: str, base: str) -> None:
    monkeypatch.setenv(f"PUBLISHER_{kind.upper()}_API_BASE", base)
    monkeypatch.setenv(f"PUBLISHER_{kind.upper()}_APP_ID", "sandbox")
    monkeypatch.setenv(f"PUBLISHER_{kind.upper()}_SECRET", "sandbox-secret")


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for kind in ("website", "catalogue"):
        enable(monkeypatch, kind, "http://127.0.0.1:9")
    monkeypatch.setenv("PUBLISHER_WEIBO_RIP", "211.156.0.1")  # the real API needs the public IP
    reset_settings()
    return get_settings()


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def client_view(settings: Settings, item_id: int) -> dict[str, Any]:
    """The item as the API and the CLI read it."""
    with get_database(settings).session() as session:
        return item_view(session, item_id)


def reviewed(item_id: int = 1) -> None:
    """Take the item through review: every stage approved by real reviewers."""
    with get_database().session() as session:
        approve_all(session, item_id)


def create_args(**overrides: str) -> list[str]:
    values = {
        "--title": "关于开展2026年义诊活动的通知",
        "--domain": "health",
        "--department": "wjj",
        "--formed-on": FORMED,
        "--body-html": "<p>义诊时间：每周六上午。</p>",
        **overrides,
    }
    args = ["items", "create"]
    for key, value in values.items():
        if value:
            args += [key, value]
    return args


def test_token_create_prints_a_token_the_api_accepts(settings: Settings) -> None:
    result = run("token", "create", "--role", "operator", "--label", "ops")
    assert result.exit_code == 0, result.output
    plaintext = result.output.strip()
    assert plaintext.startswith("pub_") and "\n" not in plaintext
    with TestClient(create_app(settings)) as client:
        ok = client.get("/api/v1/channels", headers={"Authorization": f"Bearer {plaintext}"})
        assert ok.status_code == 200
        denied = client.post(
            "/api/v1/items", json={}, headers={"Authorization": f"Bearer {plaintext}"}
        )
        assert denied.status_code == 403


def test_token_create_with_unknown_department_exits_2(settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["token", "create", "--role", "editor", "--department", "x"])
    assert result.exit_code == 2
    assert result.output == "错误：部门“x”不存在或已停用（字段 department，规则 known）\n"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"--title": ""}, "错误：请填写标题（字段 title，规则 required）"),
        (
            {"--domain": "astrology"},
            "错误：领域“astrology”不存在或已停用（字段 domain，规则 known）",
        ),
        (
            {"--department": "jyj"},
            "错误：部门“jyj 教育局”不负责“health 基本医疗卫生”领域"
            "（字段 department，规则 responsible）",
        ),
        (
            {"--formed-on": (date.today() + timedelta(days=3)).isoformat()},
            f"错误：成文日期不能晚于今天（{BEIJING_TODAY.isoformat()}）"
            "（字段 formed_on，规则 not_future）",
        ),
        (
            {"--title": "标题" * 101},
            "错误：标题最多200个字（字段 title，规则 max_length）",
        ),
        (
            {"--channel": "website", "--keyword": "k" * 33},
            "错误：每个关键词最多32个字（字段 keywords，规则 max_length）",
        ),
    ],
)
def test_bad_input_exits_2_in_chinese_naming_field_and_rule(
    settings: Settings, overrides: dict[str, str], expected: str
) -> None:
    result = CliRunner().invoke(cli, create_args(**overrides))
    assert result.exit_code == 2, result.output
    assert expected in result.output.splitlines()
    listed = run("items", "list")
    assert "（共 0 条，显示 0 条）" in listed.output


def test_a_negative_weibo_slow_seconds_exits_2_naming_the_variable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_WEIBO_SLOW_SECONDS", "-1")
    reset_settings()
    result = CliRunner().invoke(cli, ["items", "list"])
    assert result.exit_code == 2
    assert "error: PUBLISHER_WEIBO_SLOW_SECONDS: Input should be greater than or equal to 0" in (
        result.output
    )
    monkeypatch.setenv("PUBLISHER_WEIBO_SLOW_SECONDS", "3")
    reset_settings()
    assert get_settings().weibo_slow_seconds == 3.0


def test_bad_date_format_is_a_usage_error(settings: Settings) -> None:
    result = CliRunner().invoke(cli, create_args(**{"--formed-on": "yesterday"}))
    assert result.exit_code == 2
    assert "--formed-on" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            create_args(**{"--formed-on": "yesterday"}),
            "错误：--formed-on 的值无效：日期格式须为 YYYY-MM-DD（如 2026-12-02）（规则 date）",
        ),
        (
            ["items", "list", "--status", "gone"],
            "错误：--status 的值无效：须为以下之一：draft、submitted、approved、published、"
            "retracted（规则 choice）",
        ),
        (["items", "retract"], "错误：缺少参数 ITEM_ID（规则 required）"),
        (["items", "send-back", "1"], "错误：缺少选项 --comment（规则 required）"),
        (
            ["items", "retract", "1", "--reason", "x" * 2001],
            "错误：--reason 的值无效：最多2000个字（规则 max_length）",
        ),
        (["items", "list", "--colour", "red"], "错误：没有选项 --colour"),
        (["itemz"], "错误：没有命令“itemz”"),
    ],
)
def test_usage_errors_exit_2_in_chinese_naming_the_parameter(
    settings: Settings, args: list[str], expected: str
) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[-1] == expected, result.output
    assert lines[0].startswith("Usage: ") and lines[1].endswith(" -h”查看用法。")


def test_a_refusal_exits_1_in_chinese(settings: Settings) -> None:
    shown = CliRunner().invoke(cli, ["items", "show", "99"])
    assert (shown.exit_code, shown.output) == (1, "错误：信息 99 不存在\n")
    assert run(*create_args()).exit_code == 0
    refused = CliRunner().invoke(cli, ["items", "retract", "1"])
    assert (refused.exit_code, refused.output) == (1, "错误：信息 1 草稿，未发布，无需撤回\n")


def test_items_create_publish_list_show(
    settings: Settings, dispatched: list[tuple[int, str, float]]
) -> None:
    result = run(*create_args())
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "已创建信息 1（草稿）"
    assert run("items", "publish", "1").exit_code == 1  # not reviewed yet
    reviewed()
    result = run("items", "publish", "1")
    assert result.exit_code == 0, result.output
    assert result.output == f"信息 1 已发布，索引号 733099896/{date.today().year}-00001\n"
    assert [kind for _, kind, _ in dispatched] == ["website"]  # the catalogue waits for it

    listed = run("items", "list", "--status", "published").output.splitlines()
    assert listed[0].split() == ["编号", "状态", "索引号", "领域", "部门", "标题"]
    # Departments and domains with their Chinese names beside their codes.
    assert listed[1].split() == [
        "1",
        "published",
        "已发布",
        f"733099896/{date.today().year}-00001",
        "health",
        "基本医疗卫生",
        "wjj",
        "卫计局",
        "关于开展2026年义诊活动的通知",
    ]

    shown = run("items", "show", "1").output
    assert "部门      wjj 卫计局" in shown and "领域      health 基本医疗卫生" in shown
    assert "website 网站" in shown and "pending 排队中" in shown
    assert "catalogue 政务公开目录" in shown and "等待网站页面生成" in shown
    jobs = run("jobs", "list", "--channel", "website").output
    assert "website 网站" in jobs and "catalogue" not in jobs

    edited = run("items", "edit", "1", "--title", "更正：义诊活动时间")
    assert edited.exit_code == 0 and edited.output == "信息 1：已生成第2版\n"
    retracted = run("items", "retract", "1")
    assert retracted.exit_code == 0, retracted.output
    assert CliRunner().invoke(cli, ["items", "show", "99"]).exit_code == 1


def test_domains_departments_channels_and_jobs(settings: Settings, dispatched: list[Any]) -> None:
    assert run("departments", "add", "mzj", "--name", "民政局").exit_code == 0
    added = run(
        "domains",
        "add",
        "elderly",
        "--name",
        "养老服务",
        "--catecode",
        "0908",
        "--department",
        "mzj",
    )
    assert added.exit_code == 0, added.output
    assert "elderly" in run("domains", "list").output
    created = run(*create_args(**{"--domain": "elderly", "--department": "mzj"}))
    assert created.exit_code == 0, created.output

    assert run("channels", "pause", "website", "--reason", "维护").exit_code == 0
    listing = run("channels", "list").output
    website_line = next(line for line in listing.splitlines() if line.startswith("website"))
    assert "已暂停" in website_line and "维护" in website_line
    assert run("channels", "resume", "website").exit_code == 0

    result = run("channels", "set-token", "weibo", input="weibo-secret-token\n")
    assert result.exit_code == 0, result.output
    assert "weibo-secret-token" not in result.output
    weibo_line = next(
        line for line in run("channels", "list").output.splitlines() if line.startswith("weibo")
    )
    assert "已启用" in weibo_line

    reviewed()
    run("items", "publish", "1")
    cancelled = run("jobs", "cancel", "1")
    assert cancelled.exit_code == 0 and cancelled.output == "投递 1 已取消\n"
    assert "状态          cancelled 已取消" in run("jobs", "show", "1").output
    assert run("jobs", "retry", "1").exit_code == 0
    assert CliRunner().invoke(cli, ["jobs", "retry", "99"]).exit_code == 1


def test_publish_wait_follows_real_deliveries_until_live(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_sandbox("website") as website, running_sandbox("catalogue") as catalogue:
        enable(monkeypatch, "website", website.url)
        enable(monkeypatch, "catalogue", catalogue.url)
        monkeypatch.setenv("PUBLISHER_HTTP_TIMEOUT_SECONDS", "2")
        reset_settings()
        settings = get_settings()
        work: queue.Queue[int | None] = queue.Queue()
        database = get_database(settings)
        engine = DeliveryEngine(database, settings, ChannelPool(settings, shared_store(settings)))

        def loop() -> None:
            while (delivery_id := work.get()) is not None:
                engine.sync(delivery_id, "test-worker")

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            with dispatching_to(lambda pairs: [work.put(i) for i, _, _ in pairs]):
                assert run(*create_args()).exit_code == 0
                reviewed()
                result = run("items", "publish", "1", "--wait", "--timeout", "20")
        finally:
            work.put(None)
            thread.join(timeout=10)
        assert result.exit_code == 0, result.output
        assert result.output.endswith("各渠道均已上线\n"), result.output
        urls = {d["channel"]: d["url"] for d in client_view(settings, 1)["deliveries"]}
        # Not a terminal: a line whenever a channel's line changes; the last of each shows
        # the channel live, with its whole URL.
        lines = result.output.splitlines()
        for kind, name in (("website", "网站"), ("catalogue", "政务公开目录")):
            last = [line for line in lines if line.startswith(kind)][-1]
            assert last.split() == [kind, name, "已上线", urls[kind]], result.output
        assert "\x1b[" not in result.output
        assert len(website.inspect()["records"]) == 1

    # The attempts just made show in the metrics, read from the database.
    text = render_metrics(metrics_registry(get_database(settings))).decode()
    assert 'publisher_attempts_total{channel="website",outcome="ok"}' in text
    assert 'publisher_attempt_duration_seconds_count{channel="website"}' in text
    assert 'publisher_deliveries{channel="website",state="live"} 1.0' in text


def test_several_api_processes_accept_connections_without_nagle() -> None:
    import asyncio
    import socket

    import uvicorn

    from publisher.cli.run import tcp_listener

    async def accepted_nodelay(listener: socket.socket) -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Report(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Report, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            found = await asyncio.wait_for(accepted, 10)
            writer.close()
        return found

    config = uvicorn.Config("publisher.api.app:create_app", host="127.0.0.1", port=0, workers=2)
    assert asyncio.run(accepted_nodelay(tcp_listener(config.bind_socket()))) != 0


@pytest.mark.parametrize(
    ("database_url", "configured", "expected"),
    [
        (None, None, 1),  # the embedded SQLite default: one writer anyway
        ("postgresql+psycopg://db/publisher", None, max(2, os.cpu_count() or 1)),
        ("postgresql+psycopg://db/publisher", 3, 3),
        (None, 2, 2),
    ],
)
def test_api_processes_default_to_one_on_sqlite_and_one_per_cpu_on_postgres(
    tmp_path: Path, database_url: str | None, configured: int | None, expected: int
) -> None:
    settings = Settings(var_dir=tmp_path, database_url=database_url, api_workers=configured)
    assert settings.resolved_api_workers() == expected


def test_a_cli_publish_reaches_the_broker_through_the_cli_sender(settings: Settings) -> None:
    """The CLI installs a Celery client of its own: the website's sync message is on the
    broker's website queue once `items publish` has committed."""
    from kombu import Connection
    from sqlalchemy import select

    from publisher.config import broker_transport_options
    from publisher.dispatch import SYNC_DELIVERY, queue_for
    from publisher.models import Delivery

    assert run(*create_args()).exit_code == 0
    reviewed()
    assert run("items", "publish", "1").exit_code == 0
    with (
        Connection(
            settings.resolved_broker_url(), transport_options=broker_transport_options(settings)
        ) as conn,
        conn.SimpleQueue(queue_for("website")) as website_queue,
    ):
        received = website_queue.get(timeout=10)
        task, args = received.headers["task"], received.payload[0]
        received.ack()
    with get_database(settings).session() as session:
        website = session.scalars(
            select(Delivery.id).where(Delivery.item_id == 1, Delivery.channel_kind == "website")
        ).one()
    assert (task, args) == (SYNC_DELIVERY, [website])
