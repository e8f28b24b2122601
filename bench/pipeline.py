"""The product's side of the benchmark, through its public API and its store.

Items are created and published with `POST /api/v1/items` and `POST /items/{id}/publish`;
"live" is each delivery's `live_at`, read straight from the database (no API polling load).
Latency of an item = the last of its four channels' `live_at` − the start of its publish call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy import create_engine, func, select

from bench import content
from channels.registry import KINDS
from publisher.models import Delivery, DeliveryState


@dataclass
class Calls:
    """Latencies (ms) of one kind of API call, and what each call returned."""

    latencies_ms: list[float] = field(default_factory=list)
    started: dict[int, float] = field(default_factory=dict)  # item id → call start (epoch)
    failures: list[str] = field(default_factory=list)


class ApiClients:
    """`clients` threads, each with its own keep-alive session, calling the API at once."""

    def __init__(self, api: str, headers: dict[str, str], clients: int) -> None:
        self.api = api
        self.headers = headers
        self.clients = clients
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self.headers)
            self._local.session = session
        return session

    def run(
        self, calls: Sequence[tuple[int, Callable[[requests.Session], requests.Response]]]
    ) -> tuple[Calls, dict[int, Any]]:
        result = Calls()
        answers: dict[int, Any] = {}
        lock = threading.Lock()

        def one(key: int, call: Callable[[requests.Session], requests.Response]) -> None:
            session = self._session()
            started = time.time()
            t0 = time.perf_counter()
            try:
                resp = call(session)
            except requests.RequestException as exc:
                with lock:
                    result.failures.append(f"{key}: {exc}")
                return
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if resp.status_code >= 300:
                    result.failures.append(f"{key}: {resp.status_code} {resp.text[:200]}")
                    return
                result.latencies_ms.append(elapsed)
                result.started[key] = started
                answers[key] = resp.json()

        with ThreadPoolExecutor(self.clients) as pool:
            for future in [pool.submit(one, key, call) for key, call in calls]:
                future.result()
        return result, answers

    def create_items(self, numbers: Sequence[int]) -> tuple[Calls, list[int]]:
        """Create one draft per number; returns the calls and the new items' ids, in order."""
        calls = [
            (n, lambda s, n=n: s.post(f"{self.api}/items", json=content.item_body(n), timeout=60))
            for n in numbers
        ]
        result, answers = self.run(calls)
        if result.failures:
            raise RuntimeError(f"creating items failed: {result.failures[:3]}")
        return result, [int(answers[n]["id"]) for n in numbers]

    def publish(self, item_ids: Sequence[int]) -> Calls:
        calls = [
            (i, lambda s, i=i: s.post(f"{self.api}/items/{i}/publish", timeout=60))
            for i in item_ids
        ]
        result, _ = self.run(calls)
        if result.failures:
            raise RuntimeError(f"publishing items failed: {result.failures[:3]}")
        return result


@dataclass
class LiveTimes:
    live: dict[int, dict[str, float]]  # item id → channel → live_at (epoch)
    pending: dict[str, int]  # "channel:state" → how many deliveries were not live at the end
    finished: bool


def wait_live(database_url: str, item_ids: Sequence[int], timeout: float) -> LiveTimes:
    """Wait until every channel of every item is live (or `timeout`); read each `live_at`."""
    engine = create_engine(database_url)
    want = len(item_ids) * len(KINDS)
    ids = list(item_ids)
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                live = conn.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.item_id.in_(ids), Delivery.state == DeliveryState.LIVE)
                )
                conn.rollback()
                if live == want:
                    break
                time.sleep(0.1)
            rows = conn.execute(
                select(
                    Delivery.item_id, Delivery.channel_kind, Delivery.state, Delivery.live_at
                ).where(Delivery.item_id.in_(ids))
            ).all()
    finally:
        engine.dispose()
    times: dict[int, dict[str, float]] = {}
    pending: dict[str, int] = {}
    for item_id, kind, state, live_at in rows:
        if state == DeliveryState.LIVE and live_at is not None:
            times.setdefault(item_id, {})[kind] = live_at.timestamp()
        else:
            key = f"{kind}:{state.value}"
            pending[key] = pending.get(key, 0) + 1
    done = sum(len(k) for k in times.values())
    return LiveTimes(times, pending, finished=done == want)


def item_latencies(started: dict[int, float], live: dict[int, dict[str, float]]) -> list[float]:
    """Seconds from each item's publish to its last channel going live (complete items only)."""
    return [
        max(live[key].values()) - started[key]
        for key in started
        if key in live and len(live[key]) == len(KINDS)
    ]


def channel_latencies(
    started: dict[int, float], live: dict[int, dict[str, float]], kind: str
) -> list[float]:
    return [live[k][kind] - started[k] for k in started if kind in live.get(k, {})]


def throughput(started: dict[int, float], live: dict[int, dict[str, float]]) -> float:
    """Complete items per second, from the first publish to the last channel going live."""
    complete = [k for k in started if len(live.get(k, {})) == len(KINDS)]
    if not complete:
        return 0.0
    first = min(started.values())
    last = max(max(live[k].values()) for k in complete)
    return len(complete) / max(last - first, 1e-9)
