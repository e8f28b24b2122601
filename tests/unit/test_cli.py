"""The `publisher` CLI through click's CliRunner, on a migrated SQLite database."""

from __future__ import annotations

import os
import queue
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

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
from publisher.shared import shared_store
from tests.support import approve_all, dispatching_to, running_sandbox

FORMED = (date.today() - timedelta(days=1)).isoformat()


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
    assert "department (known)" in result.output


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"--title": ""}, "title (required)"),
        ({"--domain": "astrology"}, "domain (known)"),
        ({"--department": "jyj"}, "department (responsible)"),
        ({"--formed-on": (date.today() + timedelta(days=3)).isoformat()}, "formed_on (not_future)"),
    ],
)
def test_bad_input_exits_2_naming_field_and_rule(
    settings: Settings, overrides: dict[str, str], expected: str
) -> None:
    result = CliRunner().invoke(cli, create_args(**overrides))
    assert result.exit_code == 2, result.output
    assert expected in result.output
    listed = run("items", "list")
    assert "(0 of 0)" in listed.output


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


def test_items_create_publish_list_show(
    settings: Settings, dispatched: list[tuple[int, str, float]]
) -> None:
    result = run(*create_args())
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created item 1"
    assert run("items", "publish", "1").exit_code == 1  # not reviewed yet
    reviewed()
    result = run("items", "publish", "1")
    assert result.exit_code == 0, result.output
    assert f"733099896/{date.today().year}-00001" in result.output
    assert [kind for _, kind, _ in dispatched] == ["website"]  # the catalogue waits for it

    listed = run("items", "list", "--status", "published").output.splitlines()
    assert listed[0].split() == ["ID", "STATUS", "INDEX_NO", "DOMAIN", "DEPARTMENT", "TITLE"]
    assert listed[1].split()[:2] == ["1", "published"]
    assert "关于开展2026年义诊活动的通知" in listed[1]

    shown = run("items", "show", "1").output
    assert "wjj" in shown and "website" in shown and "pending" in shown
    jobs = run("jobs", "list", "--channel", "website").output
    assert "website" in jobs and "catalogue" not in jobs

    edited = run("items", "edit", "1", "--title", "更正：义诊活动时间")
    assert edited.exit_code == 0 and "revision 2" in edited.output
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
    assert "paused" in website_line and "维护" in website_line
    assert run("channels", "resume", "website").exit_code == 0

    result = run("channels", "set-token", "weibo", input="weibo-secret-token\n")
    assert result.exit_code == 0, result.output
    assert "weibo-secret-token" not in result.output
    weibo_line = next(
        line for line in run("channels", "list").output.splitlines() if line.startswith("weibo")
    )
    assert "enabled" in weibo_line

    reviewed()
    run("items", "publish", "1")
    cancelled = run("jobs", "cancel", "1")
    assert cancelled.exit_code == 0 and "cancelled" in run("jobs", "show", "1").output
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
        assert "all channels settled" in result.output
        final = result.output.split("all channels settled")[0].strip().splitlines()[-2:]
        assert all("live" in line for line in final), result.output
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
