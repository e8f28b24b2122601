"""The bare Celery baseline: the same HTTP calls to the same sandboxes, from plain tasks.

What a hand-rolled integration would do: the website first (the others link to it), then the
catalogue, WeChat and Weibo, each a task on its own queue, with the very adapters the product
uses (so the HTTP calls, signatures and payloads are the same) — and nothing else: no
database, no claim, no lease, no attempt rows, no pacing, no retries. WeChat's publish job is
polled with `freepublish/get` until it is out. Each channel that goes live is recorded in
Redis (`DONE_KEY`) with the time; `run_baseline` enqueues and waits.

Run its worker with `celery -A bench.baseline worker -Q baseline.website,...`; the channel
settings come from the same `PUBLISHER_*` environment as the product's worker.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import redis
from celery import Celery
from kombu import Queue

from bench import content
from channels.base import Channel, Receipt, Remote
from channels.errors import ChannelError
from channels.registry import KINDS
from publisher.channel_config import build_channel
from publisher.config import get_settings

BROKER_URL = os.environ.get("BENCH_BASELINE_BROKER", "redis://127.0.0.1:6379/12")
DONE_KEY = "bench:baseline:live"
ERRORS_KEY = "bench:baseline:errors"
WECHAT_POLL_SECONDS = 0.1
WECHAT_MAX_POLLS = 600


def queue_for(kind: str) -> str:
    return f"baseline.{kind}"


app = Celery("bench-baseline")
app.conf.update(
    broker_url=BROKER_URL,
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    result_backend=None,
    task_acks_late=True,  # as the product's worker: the comparison is of the work, not of acks
    worker_prefetch_multiplier=1,
    task_default_queue=queue_for("website"),
    task_queues=[Queue(queue_for(kind)) for kind in KINDS],
    broker_transport_options={"visibility_timeout": 600},
    worker_hijack_root_logger=False,
)


class ProcessStore:
    """A `SharedStore` kept in the worker process: tokens cached, no rate windows at all."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.added: dict[str, float] = {}  # `add`ed key → when it lapses (time.monotonic)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
        self.added.pop(key, None)

    def take_slot(self, key: str, limit: int, window_seconds: float) -> float | None:
        return None

    def add(self, key: str, value: str, ttl_seconds: float) -> bool:
        if self.added.get(key, 0.0) > time.monotonic():
            return False
        self.added[key] = time.monotonic() + ttl_seconds
        return True

    def count(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        self.values[key] = str(int(self.values.get(key, "0")) + by)
        return int(self.values[key])


@lru_cache(maxsize=1)
def _store() -> ProcessStore:
    return ProcessStore()


@cache
def channel(kind: str) -> Channel:
    return build_channel(kind, get_settings(), _store())


@lru_cache(maxsize=1)
def _records() -> redis.Redis:
    return redis.Redis.from_url(BROKER_URL)


def _live(number: int, kind: str) -> None:
    _records().rpush(DONE_KEY, json.dumps({"item": number, "kind": kind, "at": time.time()}))


def _failed(number: int, kind: str, exc: Exception) -> None:
    _records().rpush(ERRORS_KEY, json.dumps({"item": number, "kind": kind, "error": str(exc)}))


def publication(number: int, website_url: str | None) -> Any:
    return content.publication(number, org_code=get_settings().org_code, website_url=website_url)


def _create(kind: str, number: int, website_url: str | None) -> Receipt | None:
    """The channel's create of item `number`; None (recorded as an error) when it failed."""
    try:
        return channel(kind).create(publication(number, website_url))
    except ChannelError as exc:
        _failed(number, kind, exc)
        return None


@app.task(name="baseline.website", ignore_result=True)
def publish_website(number: int) -> None:
    receipt = _create("website", number, None)
    if receipt is None:
        return
    _live(number, "website")
    for kind in ("catalogue", "weibo"):
        publish_linked.apply_async(args=[kind, number, receipt.url], queue=queue_for(kind))
    publish_wechat.apply_async(args=[number, receipt.url], queue=queue_for("wechat"))


@app.task(name="baseline.linked", ignore_result=True)
def publish_linked(kind: str, number: int, website_url: str) -> None:
    """The catalogue or Weibo: live once created."""
    if _create(kind, number, website_url) is not None:
        _live(number, kind)


@app.task(name="baseline.wechat", ignore_result=True)
def publish_wechat(number: int, website_url: str) -> None:
    receipt = _create("wechat", number, website_url)
    if receipt is not None:
        poll_wechat.apply_async(
            args=[number, website_url, dict(receipt.state), 0], queue=queue_for("wechat")
        )


@app.task(name="baseline.wechat_poll", ignore_result=True)
def poll_wechat(number: int, website_url: str, state: dict[str, Any], polls: int) -> None:
    try:
        found = channel("wechat").lookup(
            publication(number, website_url), Remote(str(state["publish_id"]), state=state)
        )
    except ChannelError as exc:
        _failed(number, "wechat", exc)
        return
    if found is not None and found.complete:
        _live(number, "wechat")
    elif polls >= WECHAT_MAX_POLLS:
        _failed(number, "wechat", RuntimeError("the publish job never finished"))
    else:
        poll_wechat.apply_async(
            args=[number, website_url, state, polls + 1],
            queue=queue_for("wechat"),
            countdown=WECHAT_POLL_SECONDS,
        )


# --- the driver (runs in the bench process) ---------------------------------------------------


@dataclass
class BaselineRun:
    started: dict[int, float]  # item number → when its first task was sent
    live: dict[int, dict[str, float]]  # item number → channel → when it went live
    errors: list[dict[str, Any]]
    first_sent: float
    finished: bool


def run_baseline(numbers: list[int], timeout: float) -> BaselineRun:
    """Send one website task per item and wait until every channel of every item is live."""
    records = _records()
    records.delete(DONE_KEY, ERRORS_KEY)
    started: dict[int, float] = {}
    first = time.time()
    for number in numbers:
        started[number] = time.time()
        publish_website.apply_async(args=[number], queue=queue_for("website"))
    want = len(numbers) * len(KINDS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if records.llen(DONE_KEY) >= want or records.llen(ERRORS_KEY):
            break
        time.sleep(0.05)
    live: dict[int, dict[str, float]] = {}
    for raw in records.lrange(DONE_KEY, 0, -1):
        entry = json.loads(raw)
        live.setdefault(int(entry["item"]), {})[entry["kind"]] = float(entry["at"])
    errors = [json.loads(raw) for raw in records.lrange(ERRORS_KEY, 0, -1)]
    done = sum(len(kinds) for kinds in live.values())
    return BaselineRun(started, live, errors, first, finished=done >= want and not errors)
