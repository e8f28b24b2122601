"""The tamper-evident audit trail (issue 11, item 6): the chain over real writes (API, CLI,
concurrent PostgreSQL writers), `publisher audit verify` naming the first broken row after
the database is edited behind its back, PostgreSQL's trigger, pruning to the retention,
`GET /audit` and the client address each row records."""

from __future__ import annotations

import functools
import io
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from publisher import audit_trail, db
from publisher.api.app import create_app
from publisher.api.wechat_callback import wechat_signature
from publisher.audit import PRUNE_ACTION, audit, row_digest, walk_chain
from publisher.audit_trail import verify_chain
from publisher.auth import create_token
from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.models import AuditEvent, Delivery, DeliveryState, Revision
from tests.support import enable_signed_channels, fresh_postgres, item_json

CLI_ADDRESS = f"cli@{socket.gethostname()}"
CALLBACK_TOKEN = "wechat-callback-token"


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    enable_signed_channels(monkeypatch)
    monkeypatch.setenv("PUBLISHER_WECHAT_CALLBACK_TOKEN", CALLBACK_TOKEN)
    reset_settings()
    return get_settings()


@pytest.fixture
def on_postgres(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch, dispatched: list[Any]
) -> Iterator[Settings]:
    """The settings on a fresh, migrated database of the local PostgreSQL."""
    monkeypatch.setenv("PUBLISHER_DATABASE_URL", fresh_postgres())
    reset_settings()
    db.reset_database()
    yield get_settings()
    db.reset_database()


def headers(role: str, department: str | None = None) -> dict[str, str]:
    with get_database().session() as session:
        plaintext = create_token(session, role, department, label="test")
    return {"Authorization": f"Bearer {plaintext}"}


def cli_run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


def sqlite_file(settings: Settings) -> Path:
    return Path(settings.resolved_database_url().removeprefix("sqlite:///"))


def rows(settings: Settings) -> list[dict[str, Any]]:
    with get_database(settings).session() as session:
        found = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [
            {
                "id": row.id,
                "action": row.action,
                "actor": row.actor,
                "item_id": row.item_id,
                "revision_id": row.revision_id,
                "client_address": row.client_address,
                "details": row.details,
                "prev_hash": row.prev_hash,
                "row_hash": row.row_hash,
            }
            for row in found
        ]


def write_rows(count: int, *, at: datetime | None = None, action: str = "test.write") -> None:
    """`count` audited transactions; `at` back-dates their rows (as if written then)."""
    for n in range(count):
        with get_database().session() as session:
            row = audit(session, "tester", action, f"test:{n}", n=n)
            if at is not None:
                row.at = at + timedelta(seconds=n)
                row.row_hash = row_digest(row)  # what audit() would have written at that time


def sqlite_execute(settings: Settings, statement: str, *params: Any) -> None:
    with sqlite3.connect(sqlite_file(settings)) as conn:
        conn.execute(statement, params)


# --- the chain over real writes, and `audit verify` --------------------------------------------


def test_api_and_cli_actions_are_chained_and_verify_passes(
    client: TestClient, settings: Settings
) -> None:
    admin = headers("admin")
    created = client.post("/api/v1/items", json=item_json(), headers=admin).json()
    client.post("/api/v1/items", json=item_json(title="第二条公告"), headers=admin)
    edited = client.patch(
        f"/api/v1/items/{created['id']}", json={"summary": "补贴发放（修订）"}, headers=admin
    )
    assert edited.status_code == 200, edited.text
    for step in ("pause", "resume"):
        answer = client.post(
            f"/api/v1/channels/website/{step}", json={"reason": "维护"}, headers=admin
        )
        assert answer.status_code == 200, answer.text
    uploaded = client.post(
        "/api/v1/media", files={"file": ("a.png", png(), "image/png")}, headers=admin
    )
    assert uploaded.status_code == 201, uploaded.text
    assert cli_run("freeze", "start", "--reason", "哀悼日").exit_code == 0
    assert cli_run("freeze", "lift").exit_code == 0

    trail = rows(settings)
    by_action = {row["action"]: row for row in trail}
    for action in (
        "item.create",
        "item.edit",
        "channel.pause",
        "channel.resume",
        "media.upload",
        "freeze.start",
        "freeze.lift",
    ):
        assert action in by_action, f"no {action} row in {[r['action'] for r in trail]}"
    # Each row chains to the one before it.
    assert trail[0]["prev_hash"] is None
    for before, row in pairwise(trail):
        assert row["prev_hash"] == before["row_hash"]
    # The item (and its revision) come from the subject; the address from the request.
    edit = by_action["item.edit"]
    with get_database().session() as session:
        newest = session.scalars(
            select(Revision.id).where(Revision.item_id == created["id"]).order_by(Revision.id)
        ).all()[-1]
    assert (edit["item_id"], edit["revision_id"]) == (created["id"], newest)
    assert edit["client_address"] == "testclient"
    assert by_action["media.upload"]["details"]["sha256"] == uploaded.json()["sha256"]
    assert by_action["freeze.lift"]["client_address"] == CLI_ADDRESS
    assert by_action["freeze.lift"]["actor"].startswith("cli")

    verified = cli_run("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert f"审计链完好：已检查 {len(trail)} 行" in verified.output


def test_an_altered_row_is_named(settings: Settings) -> None:
    write_rows(6)
    sqlite_execute(settings, "UPDATE audit_events SET details = ? WHERE id = 4", '{"n": 99}')
    result = cli_run("audit", "verify")
    assert result.exit_code == 1
    assert "审计链在第 4 行断开" in result.output and "test.write" in result.output
    assert "altered" in result.output and "之前的 3 行完好" in result.output


def test_an_altered_row_with_its_hash_recomputed_breaks_the_next_link(settings: Settings) -> None:
    write_rows(5)
    with get_database().session() as session:
        row = session.get(AuditEvent, 2)
        assert row is not None
        row.details = {"n": 42}
        forged = row_digest(row)
    sqlite_execute(
        settings,
        "UPDATE audit_events SET details = ?, row_hash = ? WHERE id = 2",
        '{"n": 42}',
        forged,
    )
    result = cli_run("audit", "verify")
    assert result.exit_code == 1 and "第 3 行断开" in result.output


def test_a_deleted_middle_row_names_the_next(settings: Settings) -> None:
    write_rows(6)
    sqlite_execute(settings, "DELETE FROM audit_events WHERE id = 3")
    result = cli_run("audit", "verify")
    assert result.exit_code == 1
    assert "第 4 行断开" in result.output and "not the hash of the row before it" in result.output


def test_oldest_rows_removed_outside_pruning_are_noticed(settings: Settings) -> None:
    write_rows(4)
    sqlite_execute(settings, "DELETE FROM audit_events WHERE id <= 2")
    result = cli_run("audit", "verify")
    assert result.exit_code == 1
    assert "第 3 行断开" in result.output and "removed outside pruning" in result.output


def test_verify_reads_in_batches(settings: Settings) -> None:
    write_rows(23)
    assert cli_run("audit", "verify", "--batch-size", "5").exit_code == 0
    sqlite_execute(settings, "UPDATE audit_events SET actor = 'someone' WHERE id = 17")
    report = verify_chain(get_database(), batch_size=5)
    assert report.broken is not None and report.broken.row_id == 17 and report.checked == 16


def test_the_tail_recorded_elsewhere_catches_a_cut_end(settings: Settings) -> None:
    write_rows(5)
    printed = cli_run("audit", "verify", "--print-tail")
    assert printed.exit_code == 0
    tail = printed.output.strip().splitlines()[-1]
    assert tail.startswith("5:") and len(tail) == 2 + 64
    matched = cli_run("audit", "verify", "--expect-tail", tail)
    assert matched.exit_code == 0 and "与先前记下的末行一致" in matched.output

    # Removing rows from the end leaves a chain that holds: only the recorded tail tells.
    sqlite_execute(settings, "DELETE FROM audit_events WHERE id >= 4")
    assert cli_run("audit", "verify").exit_code == 0
    cut = cli_run("audit", "verify", "--expect-tail", tail)
    assert cut.exit_code == 1 and "removed from its end" in cut.output

    assert cli_run("audit", "verify", "--expect-tail", "5:nothex").exit_code == 2


def test_a_rewritten_chain_differs_from_the_recorded_tail(settings: Settings) -> None:
    write_rows(3)
    tail = cli_run("audit", "verify", "--print-tail").output.strip().splitlines()[-1]
    # Someone with write access rewrites row 3 and re-chains from there: verify alone holds.
    with get_database().session() as session:
        row = session.get(AuditEvent, 3)
        assert row is not None
        row.details = {"n": "rewritten"}
        new_hash = row_digest(row)
        session.rollback()
    sqlite_execute(
        settings,
        "UPDATE audit_events SET details = ?, row_hash = ? WHERE id = 3",
        '{"n": "rewritten"}',
        new_hash,
    )
    assert cli_run("audit", "verify").exit_code == 0
    result = cli_run("audit", "verify", "--expect-tail", tail)
    assert result.exit_code == 1 and "rewritten" in result.output


# --- retention and pruning -----------------------------------------------------------------------


def test_retention_under_six_months_is_refused(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_AUDIT_RETENTION_DAYS", "90")
    reset_settings()
    with pytest.raises(
        ValidationError, match="PUBLISHER_AUDIT_RETENTION_DAYS must be at least 183"
    ):
        get_settings()
    refused = cli_run("audit", "prune")
    assert refused.exit_code == 2
    assert "error: PUBLISHER_AUDIT_RETENTION_DAYS must be at least 183" in refused.output
    monkeypatch.setenv("PUBLISHER_AUDIT_RETENTION_DAYS", "400")
    reset_settings()
    assert get_settings().audit_retention_days == 400


def test_prune_removes_old_rows_and_records_itself(settings: Settings) -> None:
    write_rows(4, at=datetime.now(UTC) - timedelta(days=200), action="old.write")
    write_rows(3)
    before = rows(settings)

    dry = cli_run("audit", "prune", "--dry-run")
    assert dry.exit_code == 0 and "将删除 4 条183 天前" in dry.output
    assert len(rows(settings)) == 7

    pruned = cli_run("audit", "prune")
    assert pruned.exit_code == 0 and "已删除 4 条183 天前" in pruned.output
    trail = rows(settings)
    assert [row["action"] for row in trail] == ["test.write"] * 3 + [PRUNE_ACTION]
    prune_row = trail[-1]
    assert prune_row["details"]["through_id"] == 4 and prune_row["details"]["count"] == 4
    assert prune_row["details"]["anchor"] == before[3]["row_hash"]
    assert trail[0]["prev_hash"] == prune_row["details"]["anchor"]
    assert prune_row["prev_hash"] == trail[-2]["row_hash"]
    assert cli_run("audit", "verify", "--batch-size", "2").exit_code == 0

    # Nothing old left: a second prune removes nothing and writes nothing.
    again = cli_run("audit", "prune")
    assert again.exit_code == 0 and "无需清理" in again.output
    assert len(rows(settings)) == 4

    # The oldest remaining row goes outside pruning: verify says so.
    sqlite_execute(settings, "DELETE FROM audit_events WHERE id = ?", trail[0]["id"])
    broken = cli_run("audit", "verify")
    assert broken.exit_code == 1 and f"第 {trail[1]['id']} 行断开" in broken.output


def test_prune_of_every_row_still_chains(settings: Settings) -> None:
    write_rows(3, at=datetime.now(UTC) - timedelta(days=400))
    last = rows(settings)[-1]["row_hash"]
    assert cli_run("audit", "prune").exit_code == 0
    (only,) = rows(settings)
    assert only["action"] == PRUNE_ACTION and only["prev_hash"] == last
    assert cli_run("audit", "verify").exit_code == 0


def test_a_prune_while_verify_walks_is_not_a_break(settings: Settings) -> None:
    """Verification reads in batches: a prune between two batches removes rows the walk has
    not reached, and the next batch starts after the gap. That gap is pruning's, not a break;
    the same gap with no prune behind it is one."""
    write_rows(6, at=datetime.now(UTC) - timedelta(days=300), action="old.write")
    write_rows(3)
    database = get_database()
    first_batch = [dict(row) for row in audit_trail._rows_in_id_order(database, 9)][:2]
    assert cli_run("audit", "prune").exit_code == 0  # removes rows 1 to 6
    next_batches = list(audit_trail._rows_in_id_order(database, 9))
    accept = functools.partial(audit_trail.pruned_before, database)
    report = walk_chain([*first_batch, *next_batches], accept)
    assert report.broken is None and report.checked == 2 + 4

    sqlite_execute(settings, "DELETE FROM audit_events WHERE id = ?", next_batches[0]["id"])
    rest = list(audit_trail._rows_in_id_order(database, 9))
    broken = walk_chain([*first_batch, *rest], accept).broken
    assert broken is not None and broken.row_id == rest[0]["id"]


# --- PostgreSQL: the trigger, pruning, concurrent writers -----------------------------------------


def test_postgres_trigger_refuses_update_and_delete(on_postgres: Settings) -> None:
    write_rows(3)
    engine = create_engine(on_postgres.resolved_database_url())
    try:
        for statement in (
            "UPDATE audit_events SET details = '{}' WHERE id = 2",
            "DELETE FROM audit_events WHERE id = 2",
        ):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        # Saying "pruning" does not make an UPDATE acceptable.
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("SET LOCAL publisher.audit_prune = 'on'"))
            conn.execute(text("UPDATE audit_events SET actor = 'x' WHERE id = 2"))
    finally:
        engine.dispose()
    assert len(rows(on_postgres)) == 3
    assert cli_run("audit", "verify").exit_code == 0


def test_postgres_prune(on_postgres: Settings) -> None:
    write_rows(5, at=datetime.now(UTC) - timedelta(days=190), action="old.write")
    write_rows(2)
    anchor = rows(on_postgres)[4]["row_hash"]
    result = cli_run("audit", "prune")
    assert result.exit_code == 0 and "已删除 5 条" in result.output
    trail = rows(on_postgres)
    assert [row["action"] for row in trail] == ["test.write", "test.write", PRUNE_ACTION]
    assert trail[0]["prev_hash"] == anchor == trail[-1]["details"]["anchor"]
    assert trail[-1]["prev_hash"] == trail[1]["row_hash"]
    verified = cli_run("audit", "verify")
    assert verified.exit_code == 0 and "已检查 3 行" in verified.output
    # The pruning transaction's permission ended with it.
    engine = create_engine(on_postgres.resolved_database_url())
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))
    finally:
        engine.dispose()


def test_concurrent_postgres_writers_keep_one_chain(on_postgres: Settings) -> None:
    threads, transactions = 6, 15
    database = get_database(on_postgres)
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(number: int) -> None:
        try:
            start.wait()
            for n in range(transactions):
                with database.session() as session:
                    audit(session, f"writer-{number}", "test.concurrent", f"test:{n}", n=n)
                    time.sleep(0.002)  # others queue on the chain's lock meanwhile
                    audit(session, f"writer-{number}", "test.concurrent", f"test:{n}", part=2)
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    trail = rows(on_postgres)
    assert len(trail) == threads * transactions * 2
    for before, row in pairwise(trail):
        assert row["prev_hash"] == before["row_hash"]
    report = verify_chain(database)
    assert report.broken is None and report.checked == len(trail)


# --- GET /audit ---------------------------------------------------------------------------------


def test_audit_list_filters_and_pages(client: TestClient, settings: Settings) -> None:
    admin = headers("admin")
    first = client.post("/api/v1/items", json=item_json(), headers=admin).json()
    second = client.post("/api/v1/items", json=item_json(title="第二条"), headers=admin).json()
    client.patch(f"/api/v1/items/{first['id']}", json={"summary": "修订"}, headers=admin)
    client.post("/api/v1/channels/website/pause", json={"reason": "维护"}, headers=admin)
    supervisor = headers("supervisor")

    def listed(**params: Any) -> dict[str, Any]:
        answer = client.get("/api/v1/audit", params=params, headers=supervisor)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    everything = listed()
    ids = [row["id"] for row in everything["results"]]
    assert ids == sorted(ids, reverse=True) and everything["total"] == len(ids)
    assert all(len(row["row_hash"]) == 64 for row in everything["results"])
    items = listed(action="item.")
    assert {row["action"] for row in items["results"]} == {"item.create", "item.edit"}
    assert [row["action"] for row in listed(item=first["id"])["results"]] == [
        "item.edit",
        "item.create",
    ]
    assert listed(item=second["id"])["total"] == 1
    actor = items["results"][0]["actor"]
    assert listed(actor=actor)["total"] >= 3 and listed(actor="nobody")["total"] == 0
    paged = listed(action="item.", limit=1, offset=1)
    assert paged["total"] == 3 and [r["id"] for r in paged["results"]] == [
        items["results"][1]["id"]
    ]
    now = datetime.now(UTC)
    assert listed(since=(now - timedelta(minutes=5)).isoformat())["total"] == everything["total"]
    assert listed(until=(now - timedelta(minutes=5)).isoformat())["total"] == 0
    assert listed(since=(now + timedelta(minutes=5)).isoformat())["total"] == 0
    bad = client.get("/api/v1/audit", params={"since": "yesterday"}, headers=supervisor)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "since"


@pytest.mark.parametrize(
    ("role", "department", "status"),
    [
        ("editor", "sgj", 403),
        ("reviewer", "sgj", 403),
        ("operator", None, 403),
        ("supervisor", None, 200),
        ("admin", None, 200),
    ],
)
def test_audit_list_is_for_supervisors_and_admins(
    client: TestClient, role: str, department: str | None, status: int
) -> None:
    answer = client.get("/api/v1/audit", headers=headers(role, department))
    assert answer.status_code == status, answer.text
    assert client.get("/api/v1/audit").status_code == 401


# --- the client address and the callbacks -------------------------------------------------------


def test_forwarded_for_is_believed_only_from_trusted_proxies(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, dispatched: list[Any]
) -> None:
    monkeypatch.setenv("PUBLISHER_TRUSTED_PROXIES", '["10.0.0.0/8"]')
    reset_settings()
    app = create_app(get_settings())
    admin = headers("admin")
    forwarded = {**admin, "X-Forwarded-For": "198.51.100.9, 203.0.113.7, 10.0.0.9"}
    with TestClient(app, client=("10.1.2.3", 40000)) as via_proxy:
        via_proxy.post("/api/v1/channels/website/pause", json={"reason": "a"}, headers=forwarded)
    with TestClient(app, client=("192.0.2.44", 40000)) as direct:
        direct.post("/api/v1/channels/website/resume", headers=forwarded)
    trail = {row["action"]: row for row in rows(settings)}
    # From the proxy: the nearest address the proxies did not add themselves.
    assert trail["channel.pause"]["client_address"] == "203.0.113.7"
    # From anyone else the header is the caller's own say-so: the connection counts.
    assert trail["channel.resume"]["client_address"] == "192.0.2.44"


def test_wechat_publish_finished_is_recorded(
    client: TestClient, settings: Settings, dispatched: list[Any]
) -> None:
    created = client.post("/api/v1/items", json=item_json(), headers=headers("admin")).json()
    with get_database().session() as session:
        waiting = Delivery(
            item_id=created["id"],
            channel_kind="wechat",
            desired_revision_id=created["revision"]["id"],
            state=DeliveryState.UNKNOWN,
            remote_id="2247483801",
        )
        session.add(waiting)
        session.flush()
        delivery_id = waiting.id
    timestamp, nonce = str(int(time.time())), "n0nce"
    event = (
        "<xml><Event>PUBLISHJOBFINISH</Event><PublishEventInfo>"
        "<publish_id>2247483801</publish_id><publish_status>0</publish_status>"
        "<article_id>art-9</article_id></PublishEventInfo></xml>"
    )
    answer = client.post(
        "/wechat/callback",
        params={
            "timestamp": timestamp,
            "nonce": nonce,
            "signature": wechat_signature(CALLBACK_TOKEN, timestamp, nonce),
        },
        content=event.encode(),
    )
    assert (answer.status_code, answer.text) == (200, "success")
    (row,) = [r for r in rows(settings) if r["action"] == "wechat.publish_finished"]
    assert row["details"] == {"publish_id": "2247483801", "article_id": "art-9", "published": True}
    assert row["item_id"] == created["id"]
    assert row["revision_id"] == created["revision"]["id"]
    assert row["client_address"] == "testclient" and row["actor"] == "wechat"
    assert (delivery_id, "wechat") in [(d, k) for d, k, _ in dispatched]
