"""A system given `PUBLISHER_REDIS_KEY_PREFIX` writes every Redis key under it: the broker's
(queues, bindings, the unacked hash and index) and the shared store's. That is what lets each
test run keep to a key space of its own in the shared test database and delete exactly its
keys at the end.

The proof needs a Redis nobody else writes to (any key outside the prefix must be ours), so
this test starts a private `redis-server` of its own.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import redis

from tests.e2e.system import System, wait_for
from tests.support import RedisSpace, free_port, require_service

ITEM = {
    "title": "松山湖2026年第四季度重点项目建设进展公示",
    "summary": "公示本季度重点项目的建设进展。",
    "body_html": "<p>本季度共推进重点项目12个。</p>",
    "domain": "welfare",
    "department": "sgj",
    "formed_on": date(2026, 11, 16).isoformat(),
    "channels": ["website", "catalogue"],
}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """The URL of a Redis server only this test uses, without persistence."""
    binary = shutil.which("redis-server")

    def probe() -> None:
        if binary is None:
            raise RuntimeError("no redis-server on PATH")

    require_service("a redis-server binary (this test starts a private Redis)", probe)
    assert binary is not None
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    server = subprocess.Popen(
        [*command, "--save", "", "--appendonly", "no"],  # nothing written to disk
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _answers(url), 15, "the private redis-server to answer")
        yield url
    finally:
        server.terminate()
        server.wait(15)


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def all_keys(url: str) -> list[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return sorted(client.scan_iter(count=1000))


def test_a_worker_broker_and_shared_store_write_only_under_the_prefix(
    private_redis: str, tmp_path: Path
) -> None:
    space = RedisSpace(private_redis, "pytest-key-space:")
    system = System(tmp_path, space.env())  # the embedded database, Redis for the rest
    try:
        system.start_all()
        # The shared store: an operator's token for Weibo.
        system.call("PUT", "/channels/weibo/credentials", json={"access_token": "sandbox"})
        # The broker: the API sends, beat sends the sweep, the worker takes both.
        item = system.call("POST", "/items", json=ITEM)
        system.review(item["id"])
        system.call("POST", f"/items/{item['id']}/publish")
        system.wait_states(item["id"], "live")
        while_running = all_keys(private_redis)
    finally:
        system.stop()
    after_stop = all_keys(private_redis)

    for keys in (while_running, after_stop):
        outside = [k for k in keys if not k.startswith(space.prefix)]
        assert outside == [], f"keys outside {space.prefix!r}: {outside}\n{system.logs()}"
    assert f"{space.prefix}weibo:access_token" in after_stop
    assert f"{space.prefix}_kombu.binding.channel.website" in after_stop
    assert space.delete_keys() == len(after_stop)
    assert all_keys(private_redis) == []
