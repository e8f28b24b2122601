"""The operator's failed-deliveries query over a large store.

Fills the bench database with `rows` deliveries (a quarter as many items, one delivery per
channel) in a realistic mix of states — mostly live, a few thousand failed — with
`INSERT … SELECT generate_series`, then times the query exactly as the API runs it
(`publisher.services.queries.list_deliveries`, state=failed, newest first, 50 a page, with
the total), and shows PostgreSQL's plan for both of its statements.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy import Select, create_engine, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from publisher.models import Delivery, DeliveryState
from publisher.services.queries import Page, list_deliveries

# Cumulative shares of states; the rest is live. Failed is the share the run is asked for.
OTHER_STATES = (
    ("withdrawn", 0.03),
    ("cancelled", 0.005),
    ("pending", 0.002),
    ("retrying", 0.002),
    ("deferred", 0.004),
    ("unknown", 0.001),
)
CANDIDATE_INDEX = "ix_deliveries_state_updated"
CANDIDATE_INDEX_SQL = (
    f"CREATE INDEX {CANDIDATE_INDEX} ON deliveries (state, updated_at DESC, id DESC)"
)


@dataclass
class QueryTiming:
    rows: int
    failed_rows: int
    fill_seconds: float
    service_ms: list[float] = field(default_factory=list)  # list_deliveries, warm, each run
    api_ms: list[float] = field(default_factory=list)  # GET /deliveries?state=failed
    explain: dict[str, str] = field(default_factory=dict)  # statement → EXPLAIN ANALYZE text
    plan_ms: dict[str, float] = field(default_factory=dict)  # statement → execution time
    with_index_ms: list[float] = field(default_factory=list)
    with_index_plan_ms: dict[str, float] = field(default_factory=dict)

    @property
    def service_median_ms(self) -> float:
        return statistics.median(self.service_ms)


def fill(engine: Engine, rows: int, failed_share: float) -> tuple[int, float]:
    """Insert `rows` deliveries (rows/4 items); returns (failed deliveries in the store, s)."""
    items = rows // 4
    bounds, cumulative = [], failed_share
    for state, share in OTHER_STATES:
        cumulative += share
        bounds.append((state, cumulative))
    cases = " ".join(f"WHEN r < {b:.6f} THEN '{state}'" for state, b in bounds)
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(0.42)"))
        base = conn.scalar(text("SELECT coalesce(max(id), 0) FROM items")) or 0
        conn.execute(
            text(
                """
                INSERT INTO items (id, domain_code, department_code, status, channels, urgent,
                                   created_by, created_at, updated_at, published_at)
                SELECT :base + g, 'welfare', 'sgj', 'published', '[]', false, 'bench',
                       t, t, t
                FROM (SELECT g, now() - random() * interval '365 days' AS t
                      FROM generate_series(1, :items) g) s
                """
            ),
            {"base": base, "items": items},
        )
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence('items', 'id'), :n)"), {"n": base + items}
        )
        conn.execute(
            text(
                f"""
                INSERT INTO deliveries (item_id, channel_kind, desired_present, remote_state,
                    state, next_attempt_at, attempt_count, consecutive_failures,
                    last_error_kind, last_error_code, last_error_message, explanation,
                    created_at, updated_at, live_at, remote_id, remote_url)
                SELECT item_id, kind, state <> 'withdrawn', '{{}}', state,
                       updated_at, CASE WHEN state = 'failed' THEN 3 ELSE 1 END, 0,
                       CASE WHEN state = 'failed' THEN 'permanent' END,
                       CASE WHEN state = 'failed' THEN '20012' END,
                       CASE WHEN state = 'failed'
                            THEN 'Text too long, please input text less than 140 characters!'
                       END,
                       CASE WHEN state = 'failed' THEN 'the status text is longer than 140 units'
                       END,
                       updated_at - interval '1 minute', updated_at,
                       CASE WHEN state = 'live' THEN updated_at END,
                       CASE WHEN state = 'live' THEN 'r-' || item_id || '-' || kind END,
                       CASE WHEN state = 'live'
                            THEN 'https://www.example.gov.cn/articles/item-' || item_id || '.html'
                       END
                FROM (
                    SELECT :base + g AS item_id, k.kind,
                           CASE WHEN r < :failed THEN 'failed' {cases} ELSE 'live' END AS state,
                           now() - random() * interval '365 days' AS updated_at
                    FROM generate_series(1, :items) g
                    CROSS JOIN (VALUES ('website'), ('catalogue'), ('wechat'), ('weibo')) k(kind)
                    CROSS JOIN LATERAL (SELECT random() + g * 0 AS r) rr
                ) s
                """
            ),
            {"base": base, "items": items, "failed": failed_share},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE items"))
        conn.execute(text("VACUUM ANALYZE deliveries"))
        failed = conn.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.state == "failed")
        )
    return int(failed or 0), time.monotonic() - started


def statements() -> dict[str, Select[Any]]:
    """The two statements `list_deliveries(state="failed")` runs (see `queries._page`)."""
    page = (
        select(Delivery)
        .where(Delivery.state == DeliveryState.FAILED)
        .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
    )
    count = select(func.count()).select_from(page.order_by(None).subquery())
    return {"count": count, "page": page.limit(50).offset(0)}


def explain(engine: Engine) -> tuple[dict[str, str], dict[str, float]]:
    texts, times = {}, {}
    with engine.connect() as conn:
        for name, stmt in statements().items():
            sql = str(
                stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            )
            plan = [r[0] for r in conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))]
            texts[name] = "\n".join(plan)
            times[name] = next(
                float(line.split(":")[1].split()[0])
                for line in plan
                if line.startswith("Execution Time")
            )
    return texts, times


def time_service(engine: Engine, repeat: int) -> list[float]:
    """Milliseconds of `list_deliveries(state="failed")`, one session each, as a request does."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        with Session(engine) as session:
            view = list_deliveries(session, Page(limit=50), state="failed")
        timings.append((time.perf_counter() - started) * 1000)
        assert len(view["results"]) == min(50, view["total"])
    return timings


def time_api(api: str, headers: dict[str, str], repeat: int) -> list[float]:
    timings = []
    with requests.Session() as http:
        http.headers.update(headers)
        for _ in range(repeat):
            started = time.perf_counter()
            resp = http.get(
                f"{api}/deliveries", params={"state": "failed", "limit": "50"}, timeout=60
            )
            timings.append((time.perf_counter() - started) * 1000)
            resp.raise_for_status()
    return timings


def measure(
    database_url: str,
    *,
    rows: int,
    failed_share: float,
    api: str | None,
    headers: dict[str, str],
    repeat: int = 7,
) -> QueryTiming:
    engine = create_engine(database_url)
    try:
        failed, seconds = fill(engine, rows, failed_share)
        with engine.connect() as conn:
            total = int(conn.scalar(select(func.count()).select_from(Delivery)) or 0)
        timing = QueryTiming(rows=total, failed_rows=failed, fill_seconds=seconds)
        time_service(engine, 2)  # warm the cache and the connection pool
        timing.service_ms = time_service(engine, repeat)
        if api:
            time_api(api, headers, 2)
            timing.api_ms = time_api(api, headers, repeat)
        timing.explain, timing.plan_ms = explain(engine)
        with engine.begin() as conn:
            conn.execute(text(CANDIDATE_INDEX_SQL))
            conn.execute(text("ANALYZE deliveries"))
        try:
            time_service(engine, 2)
            timing.with_index_ms = time_service(engine, repeat)
            _, timing.with_index_plan_ms = explain(engine)
        finally:
            with engine.begin() as conn:
                conn.execute(text(f"DROP INDEX {CANDIDATE_INDEX}"))
        return timing
    finally:
        engine.dispose()
