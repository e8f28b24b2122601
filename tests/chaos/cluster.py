"""The chaos cluster: the four channel sandboxes, the API, beat and several Celery workers on
PostgreSQL + Redis, as real processes; the disasters the suite inflicts on them; and what it
reads back afterwards to judge the result.

`ChaosCluster` extends `tests.e2e.system.System` (same process groups, same logs, same HTTP
helpers) with the WeChat and Weibo sandboxes, several workers, and calls to the API that
survive a cut database connection (a 5xx is retried only after checking it did not apply).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from channels.sandbox.wechat_account import DAILY_QUOTAS
from channels.wechat_calls import DAILY_LIMITS
from publisher.config import redis_client_name
from tests.e2e.system import System, _up, wait_for
from tests.support import RedisSpace, free_port

KINDS = ("website", "catalogue", "wechat", "weibo")
WORKERS = 3
FAULTS: dict[str, Any] = {
    "error_rate": 0.3,
    "latency_ms": 50,
    "timeout_after_write_rate": 0.1,
    "hang_seconds": 3,
}
NO_FAULTS: dict[str, Any] = {"error_rate": 0.0, "latency_ms": 0, "timeout_after_write_rate": 0.0}
SETTLED = ("live", "withdrawn")


class ChaosCluster(System):
    def __init__(self, var_dir: Path, database_url: str, redis_space: RedisSpace) -> None:
        super().__init__(
            var_dir,
            {
                "PUBLISHER_DATABASE_URL": database_url,
                **redis_space.env(),
                # Short, so that a killed worker's deliveries are taken over quickly; a live
                # worker renews its lease while its calls run.
                "PUBLISHER_LEASE_SECONDS": "5",
                "PUBLISHER_RESEND_AFTER_SECONDS": "2",
                # The sandbox publishes in 0.3 s: a lost submit is settled long before this.
                "PUBLISHER_WECHAT_SUBMIT_SETTLE_SECONDS": "10",
                "PUBLISHER_SWEEP_INTERVAL_SECONDS": "1",
                "PUBLISHER_BACKOFF_BASE_SECONDS": "0.2",
                "PUBLISHER_BACKOFF_CAP_SECONDS": "2",
                "PUBLISHER_HTTP_TIMEOUT_SECONDS": "2",
                "PUBLISHER_BREAKER_COOLDOWN_SECONDS": "1",
                # A run of failed probes doubles the cooldown; keep the settling phase bounded.
                "PUBLISHER_BREAKER_COOLDOWN_CAP_SECONDS": "4",
                "PUBLISHER_WECHAT_POLL_SECONDS": "1",
                # Pacing has its own tests; here it would only stretch the run.
                "PUBLISHER_WEIBO_POSTS_PER_HOUR": "10000",
                # WeChat's daily quotas have their own tests (a retried delete would soon
                # spend `freepublish/delete`'s 10 a day); lifted here and in the sandbox.
                "PUBLISHER_WECHAT_DAILY_LIMITS": json.dumps(dict.fromkeys(DAILY_LIMITS, 10**9)),
                "PUBLISHER_WEIBO_DAILY_CALLS": "100000",
                # Weibo may show a post 1-2 minutes after answering (its 20032 says so), so a
                # lost share is taken for never made only 120 s after it was sent; the sandbox
                # shows a post as soon as it answers, and 3 s keeps the settling bound.
                "PUBLISHER_WEIBO_SLOW_SECONDS": "3",
            },
        )
        self.database_url = database_url
        self.redis_space = redis_space
        for kind in ("wechat", "weibo"):
            self.ports[kind] = free_port()
            self.sandbox[kind] = f"http://127.0.0.1:{self.ports[kind]}"
        self.root = f"http://127.0.0.1:{self.ports['api']}"
        self.env.update(
            PUBLISHER_WECHAT_PORT=str(self.ports["wechat"]),
            PUBLISHER_WEIBO_PORT=str(self.ports["weibo"]),
            PUBLISHER_WECHAT_API_BASE=self.sandbox["wechat"],
            PUBLISHER_WECHAT_APPID="sandbox",
            PUBLISHER_WECHAT_SECRET="sandbox-secret",
            PUBLISHER_WECHAT_CALLBACK_TOKEN="sandbox",
            PUBLISHER_WEIBO_API_BASE=self.sandbox["weibo"],
            PUBLISHER_WEIBO_ACCESS_TOKEN="sandbox",
        )
        self.events: list[str] = []  # what was done to the cluster, for the failure report
        self.weibo_history: set[str] = set()  # the account's posts from before the run
        # While the store's connections are being cut, a request may fail with a 5xx; any other
        # time a 5xx is a finding (e.g. a deadlock between an edit and a worker).
        self.cutting_database = False
        self.started_at = time.monotonic()

    # processes

    def start_all(self) -> None:
        """Everything, on a store `tests.support.fresh_postgres` has already migrated.

        The welfare domain publishes without review (a run-time setting): the scenarios
        edit published items and test that the channels follow, not the review."""
        self.sign_in_as_admin()
        no_review = self.run("domains", "update", "welfare", "--no-review")
        assert no_review.returncode == 0, no_review.stderr
        self.start("sandbox", "sandbox", *[arg for kind in KINDS for arg in ("--only", kind)])
        self.start("api", "api", "--port", str(self.ports["api"]))
        for index in range(WORKERS):
            self.start_worker(index)
        self.start("beat", "beat")
        wait_for(lambda: _up(f"{self.api}/healthz"), 60, "the API to answer", self)
        for url in self.sandbox.values():
            wait_for(partial(_up, f"{url}/_sandbox/faults"), 30, "the sandboxes", self)
        self.post_sandbox(
            "wechat",
            "/_sandbox/wechat",
            {
                "callback_url": f"{self.root}/wechat/callback",
                "callback_token": "sandbox",
                "daily_quotas": dict.fromkeys(DAILY_QUOTAS, 10**9),
            },
        )
        # A real government account has a history, and the lookups read back past the posts
        # of a run: the timeline shows all of them (the sandbox's default of five emulates an
        # account posting more than a lookup reads) and a post made the day before, so a
        # share whose worker died before sending it is proven absent and posted once.
        self.post_sandbox(
            "weibo",
            "/_sandbox/weibo/config",
            {"rate_limit": 100000, "daily_calls": 100000, "timeline_size": 500},
        )
        history = self.post_sandbox(
            "weibo",
            "/_sandbox/weibo/history",
            {"text": "松山湖管委会：本周六上午在社区服务中心举办义诊活动。", "age_seconds": 86400},
        )
        self.weibo_history.add(str(history["idstr"]))

    def start_worker(self, index: int = 0) -> None:
        self.start(
            f"worker-{index}",
            "worker",
            "--concurrency",
            "2",
            "--hostname",
            f"chaos{index}@%h",
        )

    def kill_worker(self, index: int) -> None:
        """SIGKILL the worker's whole process group (its pool children too) and restart it."""
        name = f"worker-{index}"
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        self.note(f"kill -9 {name} (pid {proc.pid})")
        self.start_worker(index)

    def dead(self) -> list[str]:
        """Processes that stopped on their own (the ones we kill are restarted at once)."""
        return sorted(name for name, proc in self.procs.items() if proc.poll() is not None)

    # disasters

    def restart_broker(self) -> None:
        """What a Redis restart without persistence does to us: every connection of the
        cluster dropped, and its keys (messages, shared token and rate state) gone. Only the
        cluster's: the database is shared with other test runs, so no FLUSHDB."""
        name = redis_client_name(self.redis_space.prefix)
        with redis.Redis.from_url(self.redis_space.url, decode_responses=True) as client:
            dropped = 0
            for entry in client.client_list():
                if entry.get("name") == name:
                    dropped += int(client.client_kill_filter(_id=entry["id"]))
        deleted = self.redis_space.delete_keys()
        self.note(f"redis: {dropped} connections dropped, {deleted} keys deleted")

    def cut_database(self) -> int:
        """Terminate every other connection to the store; returns how many were cut."""
        dsn = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        self.note(f"pg_terminate_backend x{len(rows)}")
        return len(rows)

    def set_faults(self, faults: dict[str, Any]) -> None:
        for kind in KINDS:
            resp = requests.post(f"{self.sandbox[kind]}/_sandbox/faults", json=faults, timeout=5)
            resp.raise_for_status()
        self.note(f"faults {faults}")

    def post_sandbox(self, kind: str, path: str, body: dict[str, Any]) -> Any:
        resp = requests.post(self.sandbox[kind] + path, json=body, timeout=5)
        resp.raise_for_status()
        return resp.json()

    def note(self, event: str) -> None:
        self.events.append(f"{time.monotonic() - self.started_at:7.1f}s {event}")

    # the API, across cut database connections

    def call_until_ok(
        self,
        method: str,
        path: str,
        applied: Callable[[], bool] | None = None,
        timeout: float = 30,
        **kwargs: Any,
    ) -> Any:
        """`call`, retried after a 5xx or a dropped connection while the database connections
        are being cut (and only then). Before a write is repeated, `applied()` says whether
        the failed one took effect.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = requests.request(
                    method, self.api + path, headers=self.headers, timeout=15, **kwargs
                )
                if resp.status_code < 300:
                    return resp.json() if resp.content else None
                if resp.status_code < 500:
                    raise AssertionError(f"{method} {path}: {resp.status_code} {resp.text}")
                failure = f"{resp.status_code} {resp.text[:200]}"
            except requests.RequestException as exc:
                failure = repr(exc)
            self.note(f"{method} {path} failed ({failure}); retrying")
            if not self.cutting_database:
                raise AssertionError(f"{method} {path} failed: {failure}\n{self.api_errors()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} kept failing: {failure}")
            time.sleep(0.3)
            if applied is not None and applied():
                return None

    def api_errors(self) -> str:
        """The API log's last error lines (the tail of `logs()` cuts tracebacks short)."""
        lines = (self.var_dir / "api.log").read_text(errors="replace").splitlines()
        wanted = [line for line in lines if line[:1].strip() and not line.startswith("INFO")]
        return "\n".join(wanted[-12:])

    def item(self, item_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.call_until_ok("GET", f"/items/{item_id}")
        return found

    def all_deliveries(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self.call_until_ok(
                "GET", "/deliveries", params={"limit": 500, "offset": len(found)}
            )
            found += page["results"]
            if not page["results"] or len(found) >= page["total"]:
                return found

    def delivery_detail(self, delivery_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.call_until_ok("GET", f"/deliveries/{delivery_id}")
        return found

    def holdings(self) -> dict[str, dict[str, Any]]:
        """What each sandbox holds (its `/_sandbox/state`)."""
        return {kind: self.inspect(kind) for kind in KINDS}

    def website_url(self, item_id: int) -> str:
        """The article page the website sandbox gives `item-{id}` (stable, also once gone)."""
        return f"{self.sandbox['website']}/articles/item-{item_id}.html"
