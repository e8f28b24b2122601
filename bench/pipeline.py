"""The product's side of the benchmark, through its public API and its store.

Items are created and published with `POST /api/v1/items` and `POST /items/{id}/publish`;
"live" is each delivery's `live_at`, read straight from the database (no API polling load).
Latency of an item = the last of its four channels' `live_at` − the start of its publish call.

API clients call in one of two ways: back to back (`ApiClients.run`: each client sends its next
request the moment the previous one returns, a closed loop that measures capacity), or at a
stated rate (`ApiClients.publish_paced`: requests arrive as they would from many independent
users, whatever the server's speed, which is what a latency target is about).
"""

from __future__ import annotations

import random
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
    seconds: float = 0.0  # from the start of the run to the last answer

    @property
    def per_second(self) -> float:
        """Calls answered per second over the whole run."""
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


@dataclass
class Paced:
    """Calls sent at a stated rate (`ApiClients.publish_paced`)."""

    calls: Calls
    offered_per_s: float
    late: int  # calls sent more than 1 ms after they were due: their client was still waiting


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

        t0 = time.perf_counter()
        with ThreadPoolExecutor(self.clients) as pool:
            for future in [pool.submit(one, key, call) for key, call in calls]:
                future.result()
        result.seconds = time.perf_counter() - t0
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
        """Publish every item, the clients back to back (a closed loop)."""
        calls = [
            (i, lambda s, i=i: s.post(f"{self.api}/items/{i}/publish", timeout=60))
            for i in item_ids
        ]
        result, _ = self.run(calls)
        if result.failures:
            raise RuntimeError(f"publishing items failed: {result.failures[:3]}")
        return result

    def publish_paced(
        self, item_ids: Sequence[int], rate: float, seconds: float, seed: int = 1
    ) -> Paced:
        """Publish at `rate` per second in all for `seconds`, whatever the server's speed.

        Each of the clients (a thread with its own keep-alive session) publishes one item at a
        time, each call due an exponentially distributed pause (mean clients / rate seconds)
        after its previous one was due: together, Poisson arrivals at `rate` from the first
        moment to the last. Each call takes the next of `item_ids`, which must hold enough
        (rate × seconds on average, plus room for chance). A latency counts from when its call
        was due, so that a client still waiting for its previous answer does not hide that
        wait (coordinated omission); `late` says how often that happened.
        """
        result, lock = Calls(), threading.Lock()
        items = iter(item_ids)
        late = 0
        per_client = rate / self.clients
        start = time.perf_counter() + 0.1  # every thread started before the first call is due
        start_epoch = time.time() + 0.1

        def take() -> int | None:
            with lock:
                return next(items, None)

        def call(session: requests.Session, item_id: int, due: float, sent_late: bool) -> None:
            nonlocal late
            try:
                resp = session.post(f"{self.api}/items/{item_id}/publish", timeout=60)
            except requests.RequestException as exc:
                with lock:
                    result.failures.append(f"{item_id}: {exc}")
                return
            done = time.perf_counter()
            with lock:
                late += sent_late
                if resp.status_code >= 300:
                    result.failures.append(f"{item_id}: {resp.status_code} {resp.text[:200]}")
                    return
                result.latencies_ms.append((done - due) * 1000)
                result.started[item_id] = start_epoch + (due - start)
                result.seconds = max(result.seconds, done - start)

        def client(number: int) -> None:
            rng = random.Random(seed * 100_003 + number)
            with requests.Session() as session:
                session.headers.update(self.headers)
                due = start + rng.expovariate(per_client)
                while due < start + seconds:
                    item_id = take()
                    if item_id is None:
                        with lock:
                            result.failures.append(f"the {len(item_ids)} items ran out")
                        return
                    wait = due - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    call(session, item_id, due, sent_late=wait < -0.001)
                    due += rng.expovariate(per_client)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if result.failures:
            raise RuntimeError(f"publishing items failed: {result.failures[:3]}")
        return Paced(result, rate, late)


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
