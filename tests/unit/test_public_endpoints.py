"""The public side of the API (issue 12, item 5): `/metrics` behind its scrape token and read
from counters kept as attempts end, security headers on every response, `/media` served as its
checked type, `/docs` with nothing from another origin.

Real application, real services, a migrated SQLite store (and PostgreSQL for the counters);
a real website sandbox over HTTP for the deliveries the metrics count.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, select

from publisher import db
from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.delivery.attempts import abandon_unfinished, finish_attempt, start_attempt
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.publication import ChannelPool
from publisher.metrics import metrics_registry, render_metrics
from publisher.migrate import upgrade
from publisher.models import Attempt, AttemptOutcome, Delivery, Item, Media
from publisher.services.items import create_item
from publisher.shared import shared_store
from tests.support import (
    approve_all,
    enable_signed_channels,
    failed_delivery,
    fresh_postgres,
    item_fields,
    running_sandbox,
    user_with_token,
)

ADMIN_TOKEN = "pub_admin-token-of-the-public-endpoint-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCRAPE_TOKEN = "scrape-token-of-the-public-endpoint-tests-0123456789"
SCRAPER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}
FAMILIES = {
    "publisher_deliveries",
    "publisher_attempts",
    "publisher_attempt_duration_seconds",
    "publisher_queue_lag_seconds",
}
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    enable_signed_channels(monkeypatch)
    monkeypatch.setenv("PUBLISHER_METRICS_TOKEN", SCRAPE_TOKEN)
    reset_settings()
    user_with_token(get_database(), "admin", name="admin", token=ADMIN_TOKEN)
    return get_settings()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(database: db.Database) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(render_metrics(metrics_registry(database)).decode())


# --- /metrics and its token ---------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-scrape-token"}])
def test_metrics_without_the_scrape_token_is_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert "publisher_" not in resp.text


def test_a_user_token_is_not_a_scrape_token(client: TestClient) -> None:
    assert client.get("/metrics", headers=ADMIN).status_code == 401
    assert client.get("/api/v1/metrics", headers=SCRAPER).status_code == 401


def test_metrics_at_the_root_are_off_without_a_configured_token(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUBLISHER_METRICS_TOKEN")
    reset_settings()
    with TestClient(create_app(get_settings())) as client:
        for headers in ({}, SCRAPER, {"Authorization": "Bearer "}):
            resp = client.get("/metrics", headers=headers)
            assert resp.status_code == 404
            assert "PUBLISHER_METRICS_TOKEN" in resp.json()["detail"]
        assert client.get("/api/v1/metrics", headers=ADMIN).status_code == 200


def test_a_short_scrape_token_is_refused_naming_the_setting(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_METRICS_TOKEN", "short")
    reset_settings()
    with pytest.raises(ValueError, match="PUBLISHER_METRICS_TOKEN must be at least 32"):
        get_settings()


def test_the_scrape_token_shows_the_four_families_with_the_deliveries_made(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, dispatched: list[Any]
) -> None:
    with running_sandbox("website") as website:
        monkeypatch.setenv("PUBLISHER_WEBSITE_API_BASE", website.url)
        reset_settings()
        settings = get_settings()
        database = get_database(settings)
        engine = DeliveryEngine(database, settings, ChannelPool(settings, shared_store(settings)))
        with TestClient(create_app(settings)) as client:
            for n in range(3):
                created = client.post(
                    "/api/v1/items", json=_item_body(f"第{n + 1}号公告"), headers=ADMIN
                )
                assert created.status_code == 201, created.text
                with database.session() as session:
                    approve_all(session, created.json()["id"])
                published = client.post(
                    f"/api/v1/items/{created.json()['id']}/publish",
                    json={"channels": ["website"]},
                    headers=ADMIN,
                )
                assert published.status_code in (200, 202), published.text
            waiting = scrape(database)
            for delivery_id, kind, _ in list(dispatched):
                if kind == "website":
                    engine.sync(delivery_id, "test-worker")
            resp = client.get("/metrics", headers=SCRAPER)
        published_pages = website.inspect()["records"]["articles"]
    assert len(published_pages) == 3
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert {f.name for f in text_string_to_metric_families(resp.text)} >= FAMILIES
    figures = samples(resp.text)
    assert waiting[("publisher_deliveries", (("channel", "website"), ("state", "pending")))] == 3
    assert figures[("publisher_deliveries", (("channel", "website"), ("state", "live")))] == 3
    assert figures[("publisher_deliveries", (("channel", "website"), ("state", "pending")))] == 0
    made = _attempts_in_table(settings)
    assert made and all(outcome == "ok" for _, outcome in made)
    ok = figures[("publisher_attempts_total", (("channel", "website"), ("outcome", "ok")))]
    assert ok == made[("website", "ok")] >= 3
    assert figures[("publisher_attempt_duration_seconds_count", (("channel", "website"),))] == ok


def _item_body(title: str) -> dict[str, Any]:
    return {
        "title": title,
        "body_html": "<p>补贴标准为每户每月200元。</p>",
        "summary": "冬季供暖补贴发放",
        "domain": "welfare",
        "department": "sgj",
        "formed_on": "2026-11-20",
    }


def _attempts_in_table(settings: Settings) -> dict[tuple[str, str], int]:
    """(channel, outcome) → attempts ended, counted the expensive way: the test's oracle."""
    with get_database(settings).session() as session:
        rows = session.execute(
            select(Delivery.channel_kind, Attempt.outcome, func.count())
            .join(Delivery, Attempt.delivery_id == Delivery.id)
            .where(Attempt.outcome != AttemptOutcome.STARTED)
            .group_by(Delivery.channel_kind, Attempt.outcome)
        )
        return {(kind, AttemptOutcome(outcome).value): int(n) for kind, outcome, n in rows}


# --- counters kept as attempts end ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def counted(
    request: pytest.FixtureRequest, publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The settings on a migrated store of each kind, with a 社管局 item."""
    if request.param == "postgresql":
        monkeypatch.setenv("PUBLISHER_DATABASE_URL", fresh_postgres())
        reset_settings()
        db.reset_database()
    settings = get_settings()
    with get_database(settings).session() as session:
        create_item(session, settings, item_fields(), actor="test")
    yield settings
    db.reset_database()


# (outcome, seconds the call took): durations on both sides of bucket bounds, and beyond them.
ENDINGS = [
    (AttemptOutcome.OK, 0.01),
    (AttemptOutcome.OK, 0.2),
    (AttemptOutcome.RETRY, 0.3),
    (AttemptOutcome.FAILED, 3.0),
    (AttemptOutcome.DEFERRED, 0.07),
    (AttemptOutcome.UNKNOWN, 75.0),
]


def _attempt(database: db.Database, delivery_id: int, outcome: AttemptOutcome, took: float) -> None:
    with database.session() as session:
        delivery = session.get_one(Delivery, delivery_id)
        attempt = start_attempt(session, delivery, "lookup", None, "test-worker")
    with database.session() as session:
        finish_attempt(session, attempt, outcome, time.monotonic() - took)
        session.get_one(Delivery, delivery_id).in_flight = None


def _durations_in_table(settings: Settings) -> dict[str, list[int]]:
    """channel → durations (ms) of the attempts that have one."""
    with get_database(settings).session() as session:
        rows = session.execute(
            select(Delivery.channel_kind, Attempt.duration_ms)
            .join(Delivery, Attempt.delivery_id == Delivery.id)
            .where(Attempt.duration_ms.is_not(None))
        )
        found: dict[str, list[int]] = {}
        for kind, ms in rows:
            found.setdefault(kind, []).append(ms)
        return found


def _assert_figures_match_the_table(settings: Settings) -> dict[Any, float]:
    figures = scrape(get_database(settings))
    counted = {
        (dict(labels)["channel"], dict(labels)["outcome"]): value
        for (name, labels), value in figures.items()
        if name == "publisher_attempts_total"
    }
    assert counted == _attempts_in_table(settings)
    for kind, durations in _durations_in_table(settings).items():
        channel = (("channel", kind),)
        assert figures[("publisher_attempt_duration_seconds_count", channel)] == len(durations)
        assert figures[("publisher_attempt_duration_seconds_sum", channel)] == pytest.approx(
            sum(durations) / 1000
        )
        for le in ("0.05", "0.1", "0.25", "0.5", "5.0", "60.0"):
            bucket = ("publisher_attempt_duration_seconds_bucket", (*channel, ("le", le)))
            assert figures[bucket] == sum(1 for ms in durations if ms <= float(le) * 1000)
    return figures


def test_counters_match_the_attempts_after_many_and_never_go_down(counted: Settings) -> None:
    database = get_database(counted)
    with database.session() as session:
        item_id = session.scalars(select(Item.id)).one()
        website = failed_delivery(session, item_id, "website").id
        catalogue = failed_delivery(session, item_id, "catalogue").id
    for round_ in range(5):
        for outcome, took in ENDINGS:
            _attempt(database, website if round_ % 2 else catalogue, outcome, took)
    before = _assert_figures_match_the_table(counted)

    # A worker died mid-call: the next one abandons its attempt (counted once, no duration);
    # the dead worker's late record of the same attempt counts nothing more.
    with database.session() as session:
        delivery = session.get_one(Delivery, website)
        orphan = start_attempt(session, delivery, "delete", None, "dead-worker")
    with database.session() as session:
        abandon_unfinished(session, session.get_one(Delivery, website))
    with database.session() as session:
        finish_attempt(session, orphan, AttemptOutcome.ABANDONED, time.monotonic() - 1)
    for outcome, took in ENDINGS:
        _attempt(database, website, outcome, took)
    after = _assert_figures_match_the_table(counted)
    assert after[("publisher_attempts_total", (("channel", "website"), ("outcome", "abandoned")))]
    assert _attempts_in_table(counted)[("website", "abandoned")] == 1

    for key, value in _counted(before).items():
        assert after[key] >= value, key
    # A restarted process (a new engine and collector on the same store) goes on from there.
    db.reset_database()
    assert _counted(scrape(get_database(counted))) == _counted(after)


def _counted(figures: dict[Any, float]) -> dict[Any, float]:
    """The counters and the histogram of a scrape (not the gauges)."""
    return {k: v for k, v in figures.items() if k[0].startswith("publisher_attempt")}


def test_the_migration_counts_the_attempts_already_ended(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    upgrade(f"sqlite:///{path}", "0008")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO deliveries (id, item_id, channel_kind, desired_present, remote_state,"
            " uncertain, incomplete, state, next_attempt_at, attempt_count,"
            " consecutive_failures, created_at, updated_at)"
            " VALUES (1, 1, 'weibo', 1, '{}', 0, 0, 'live', '2026-12-01 00:00:00', 4, 0,"
            " '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
        )
        for number, (outcome, ms) in enumerate(
            [("ok", 40), ("ok", 900), ("retry", 70_000), ("abandoned", None), ("started", None)]
        ):
            conn.execute(
                "INSERT INTO attempts (delivery_id, number, action, started_at, outcome,"
                " duration_ms) VALUES (1, ?, 'create', '2026-12-01 00:00:00', ?, ?)",
                (number + 1, outcome, ms),
            )
    upgrade(f"sqlite:///{path}")
    figures = scrape(db.Database(f"sqlite:///{path}"))
    weibo = ("channel", "weibo")
    assert figures[("publisher_attempts_total", (weibo, ("outcome", "ok")))] == 2
    assert figures[("publisher_attempts_total", (weibo, ("outcome", "retry")))] == 1
    assert figures[("publisher_attempts_total", (weibo, ("outcome", "abandoned")))] == 1
    assert ("publisher_attempts_total", (weibo, ("outcome", "started"))) not in figures
    assert figures[("publisher_attempt_duration_seconds_count", (weibo,))] == 3
    assert figures[("publisher_attempt_duration_seconds_bucket", (weibo, ("le", "0.05")))] == 1
    assert figures[("publisher_attempt_duration_seconds_bucket", (weibo, ("le", "1.0")))] == 2
    assert figures[("publisher_attempt_duration_seconds_bucket", (weibo, ("le", "60.0")))] == 2
    assert figures[("publisher_attempt_duration_seconds_sum", (weibo,))] == pytest.approx(70.94)


# --- security headers ---------------------------------------------------------------------------


def _assert_security_headers(resp: Any) -> None:
    for name, value in HEADERS.items():
        assert resp.headers.get(name) == value, (resp.request.url, name)
    policy = resp.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "strict-transport-security" not in resp.headers


def test_security_headers_on_success_and_error_answers(client: TestClient) -> None:
    answers = {
        200: client.get("/api/v1/healthz"),
        401: client.get("/api/v1/items"),
        404: client.get("/api/v1/items/987654", headers=ADMIN),
        405: client.delete("/healthz"),
        422: client.post("/api/v1/items", json={"title": ""}, headers=ADMIN),
    }
    for status, resp in answers.items():
        assert resp.status_code == status, resp.text
        _assert_security_headers(resp)


def test_security_headers_on_an_unhandled_error_too(settings: Settings) -> None:
    """Starlette answers an unhandled error from outside every middleware; ours answers it
    first, with the headers, and the error still reaches the server's log."""
    app = create_app(settings)

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/broken")
    assert resp.status_code == 500 and resp.json() == {"detail": "internal error"}
    _assert_security_headers(resp)
    with TestClient(app) as client, pytest.raises(RuntimeError, match="a bug"):
        client.get("/broken")


def test_hsts_only_over_tls_or_from_a_trusted_proxy_saying_https(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    forwarded = {"X-Forwarded-Proto": "https"}
    with TestClient(create_app(settings), client=("203.0.113.9", 4000)) as direct:
        assert "strict-transport-security" not in direct.get("/healthz").headers
        # Anyone can send the header: from a client that is not a trusted proxy, no HSTS.
        assert "strict-transport-security" not in direct.get("/healthz", headers=forwarded).headers
    with TestClient(create_app(settings), base_url="https://publisher.example") as tls:
        assert tls.get("/healthz").headers["strict-transport-security"].startswith("max-age=")

    monkeypatch.setenv("PUBLISHER_TRUSTED_PROXIES", '["10.0.0.0/8"]')
    reset_settings()
    with TestClient(create_app(get_settings()), client=("10.1.2.3", 4000)) as proxied:
        resp = proxied.get("/healthz", headers=forwarded)
        assert resp.headers["strict-transport-security"].startswith("max-age=")
        plain = proxied.get("/healthz", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in plain.headers
        assert "strict-transport-security" not in proxied.get("/healthz").headers


# --- /media ---------------------------------------------------------------------------------------


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_an_uploaded_png_is_served_as_png_not_sniffed(client: TestClient) -> None:
    uploaded = client.post(
        "/api/v1/media", files={"file": ("cover.png", _png(), "image/png")}, headers=ADMIN
    )
    assert uploaded.status_code == 201, uploaded.text
    resp = client.get(uploaded.json()["url"])
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["content-disposition"] == (
        f'inline; filename="{uploaded.json()["sha256"]}.png"'
    )
    assert "sandbox" in resp.headers["content-security-policy"]
    assert Image.open(io.BytesIO(resp.content)).size == (4, 3)


def test_svg_is_neither_accepted_nor_ever_served_as_svg(
    client: TestClient, settings: Settings
) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    refused = client.post(
        "/api/v1/media", files={"file": ("x.svg", svg, "image/svg+xml")}, headers=ADMIN
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "file"]
    # A row stored with another type (by an older version, or by hand) is only a download.
    sha = hashlib.sha256(svg).hexdigest()
    with get_database(settings).session() as session:
        session.add(Media(sha256=sha, content_type="image/svg+xml", data=svg))
    resp = client.get(f"/media/{sha}")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["content-disposition"] == f'attachment; filename="{sha}"'
    assert resp.headers["x-content-type-options"] == "nosniff"


# --- /docs --------------------------------------------------------------------------------------


def test_docs_load_nothing_from_another_origin(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert re.findall(r"(?:https?:)?//[^\s\"'<>]+", page.text) == []
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3 and all(url.startswith("/docs/assets/") for url in assets)
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content
        _assert_security_headers(asset)
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_the_csp_admits_the_docs_inline_script_by_its_hash(client: TestClient) -> None:
    page = client.get("/docs")
    scripts = re.findall(r"<script>(.*?)</script>", page.text, flags=re.S)
    assert len(scripts) == 1 and "SwaggerUIBundle(" in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    policy = page.headers["content-security-policy"]
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'", f"'sha256-{digest}'"]


def test_a_scrape_never_reads_the_attempts_table(counted: Settings) -> None:
    """What a scrape asks the store, whatever the history: no statement names `attempts`."""
    database = db.Database(counted.resolved_database_url())
    statements: list[str] = []
    event.listen(
        database.engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_rest: statements.append(statement),
    )
    scrape(database)
    database.engine.dispose()
    read = [table for s in statements for table in re.findall(r"(?:FROM|JOIN)\s+(\w+)", s)]
    assert set(read) == {"attempt_counters", "deliveries"}
