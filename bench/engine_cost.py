"""What one delivery costs the engine, in one process: `python -m bench.engine_cost`.

The pipeline benchmark (`bench/run.py`) measures the whole system, where every process competes
for the same cores; this measures the engine alone, so a change to it can be weighed in
minutes. Against PostgreSQL and the four sandboxes (fault-free, as in the benchmark):

1. `--items` items are created and published through the services (no API, no broker: the
   deliveries handed over at commit are collected in this process);
2. every delivery is synced by one `DeliveryEngine` in this process, channel by channel (the
   website first, as the others wait for its page; WeChat's publish jobs are left running);
3. the same adapters make the same creates directly, as the bare baseline does.

For each, the table gives CPU and wall milliseconds per delivery (or per call) and SQL
statements per sync, counted on the engine's connection. The CPU is this process's, and for the
syncs also PostgreSQL's (every `postgres` process, from `/proc`); the sandboxes' is left out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench import content
from bench.procs import cpu_seconds
from bench.stats import Figure, render_table
from bench.system import BenchSystem, Services, fresh_database, fresh_redis
from channels.registry import KINDS

# The order deliveries become due in: the others link to the website's page.
GROUPS: tuple[tuple[str, ...], ...] = (("website",), ("catalogue", "weibo"), ("wechat",))


@dataclass
class Cost:
    label: str
    count: int
    cpu_ms: float
    wall_ms: float
    postgres_ms: float
    statements: float | None = None


def measure(label: str, run: Callable[[], int], statements: list[int] | None = None) -> Cost:
    """Time `run`, which returns how many deliveries (or calls) it made."""
    before = statements[0] if statements else 0
    cpu, wall, pg = time.process_time(), time.perf_counter(), cpu_seconds("postgres")
    count = run()
    per = max(count, 1)
    return Cost(
        f"{label} ({count})",
        count,
        (time.process_time() - cpu) * 1000 / per,
        (time.perf_counter() - wall) * 1000 / per,
        (cpu_seconds("postgres") - pg) * 1000 / per,
        (statements[0] - before) / per if statements else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine_cost", description=__doc__)
    p.add_argument("--items", type=int, default=60, help="items published (default 60)")
    args = p.parse_args(argv)
    services = Services(database="bench_engine")
    fresh_database(services)
    fresh_redis(services)
    system = BenchSystem(Path(tempfile.mkdtemp(prefix="publisher-engine-cost-")), services, 1)
    system.start_sandboxes(wechat_publish_delay=0.3)
    try:
        os.environ.update(system.env)  # before anything reads the settings
        costs = run(args.items)
    finally:
        system.stop()
    figures = []
    for c in costs:
        figures.append(Figure(f"{c.label}: CPU each", c.cpu_ms, "ms"))
        figures.append(Figure(f"{c.label}: wall each", c.wall_ms, "ms"))
        if c.statements is not None:
            figures.append(Figure(f"{c.label}: PostgreSQL CPU each", c.postgres_ms, "ms"))
            figures.append(Figure(f"{c.label}: SQL statements per sync", c.statements, ""))
    print(render_table(figures))
    return 0


def run(items: int) -> list[Cost]:
    from bench import baseline
    from publisher.api.schemas import ItemIn
    from publisher.config import get_settings
    from publisher.db import Database
    from publisher.delivery.engine import DeliveryEngine
    from publisher.delivery.publication import ChannelPool
    from publisher.dispatch import set_dispatcher
    from publisher.services import items as item_service
    from publisher.shared import shared_store

    settings = get_settings()
    database = Database(settings.resolved_database_url())
    shared = shared_store(settings, database)
    engine = DeliveryEngine(database, settings, ChannelPool(settings, shared))
    due: list[tuple[int, str, float]] = []
    set_dispatcher(due.extend)
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(database.engine, "before_cursor_execute", count)
    with database.session() as session:
        ids = [
            item_service.create_item(
                session, settings, ItemIn(**content.item_body(n)).fields(), actor="bench"
            ).id
            for n in range(items)
        ]
    for item_id in ids:
        with database.session() as session:
            item_service.publish_item(
                session, settings, item_id, actor="bench", enabled_kinds=list(KINDS)
            )

    def drain(kinds: tuple[str, ...]) -> int:
        synced = 0
        while batch := [(i, k) for i, k, _ in due if k in kinds]:
            due[:] = [entry for entry in due if entry[1] not in kinds]
            for delivery_id, _ in batch:
                engine.sync(delivery_id, "engine-cost")
                synced += 1
        return synced

    costs = [
        measure("sync " + " + ".join(kinds), partial(drain, kinds), statements) for kinds in GROUPS
    ]
    website = os.environ["PUBLISHER_WEBSITE_API_BASE"]
    for kind in KINDS:
        channel = baseline.channel(kind)
        link = None if kind == "website" else f"{website}/articles/item-1.html"
        pubs = [baseline.publication(9_000 + n, link) for n in range(items)]

        def create_all(channel: Any = channel, pubs: list[Any] = pubs) -> int:
            for pub in pubs:
                channel.create(pub)
            return len(pubs)

        costs.append(measure(f"bare {kind} create", create_all))
    return costs


if __name__ == "__main__":
    sys.exit(main())
