"""The system under benchmark: a fresh PostgreSQL database, dedicated Redis databases, the four
sandboxes, and either the product (API, worker, beat) or the baseline worker, as processes.

Nothing here touches the test databases: the store is the `bench` database (dropped and
created again), the broker Redis db 14, the shared store db 13, the baseline's broker db 12.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import requests

from bench.procs import ROOT, Processes, free_port, wait_http
from channels.registry import KINDS
from channels.sandbox.wechat_account import DAILY_QUOTAS
from channels.wechat_calls import DAILY_LIMITS
from publisher.auth import create_token
from publisher.config import DEFAULT_SANDBOX_CREDENTIAL, DEFAULT_SANDBOX_SECRET
from publisher.db import Database
from publisher.migrate import upgrade

CLI = [sys.executable, "-c", "from publisher.cli import main; main()"]
UNRATIONED_WECHAT = dict.fromkeys(DAILY_LIMITS, 1_000_000_000)


@dataclass(frozen=True)
class Services:
    postgres: str = "postgresql+psycopg://postgres@127.0.0.1:5432"
    database: str = "bench"
    redis: str = "redis://127.0.0.1:6379"
    broker_db: int = 14
    shared_db: int = 13
    baseline_db: int = 12

    @property
    def database_url(self) -> str:
        return f"{self.postgres}/{self.database}"

    def redis_url(self, db: int) -> str:
        return f"{self.redis}/{db}"


def fresh_database(services: Services) -> str:
    """Drop and create the bench database, migrate it; returns its SQLAlchemy URL."""
    admin = services.postgres.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{services.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{services.database}"')
    upgrade(services.database_url)
    without_review(services.database_url)
    return services.database_url


def without_review(database_url: str) -> None:
    """Every domain publishes without review stages (a run-time setting, audited): the
    benchmark measures the pipeline from publish to live, not people approving."""
    from publisher.services.scope import DomainChanges, list_domains, update_domain

    database = Database(database_url)
    try:
        with database.session() as session:
            for domain in list_domains(session):
                update_domain(session, domain.code, DomainChanges(review_stages=[]), actor="bench")
    finally:
        database.dispose()


def admin_token(database_url: str) -> str:
    """A token of an admin made for the run, on a migrated store."""
    database = Database(database_url)
    try:
        with database.session() as session:
            return create_token(session, "admin", label="bench")
    finally:
        database.dispose()


def fresh_redis(services: Services) -> None:
    for db in (services.broker_db, services.shared_db, services.baseline_db):
        redis.Redis.from_url(services.redis_url(db)).flushdb()


class BenchSystem:
    """Sandboxes, API, worker and beat of the product, and the baseline worker, on demand."""

    def __init__(self, var_dir: Path, services: Services, concurrency: int) -> None:
        self.var_dir = var_dir
        self.api_cli = CLI
        self.services = services
        self.concurrency = concurrency
        self.ports = {name: free_port() for name in ("api", *KINDS)}
        self.api_base = f"http://127.0.0.1:{self.ports['api']}"
        self.api = f"{self.api_base}/api/v1"
        self.sandbox = {kind: f"http://127.0.0.1:{self.ports[kind]}" for kind in KINDS}
        self.headers = {"Authorization": f"Bearer {admin_token(services.database_url)}"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            PUBLISHER_VAR_DIR=str(var_dir),
            PUBLISHER_DATABASE_URL=services.database_url,
            PUBLISHER_BROKER_URL=services.redis_url(services.broker_db),
            PUBLISHER_REDIS_URL=services.redis_url(services.shared_db),
            # A store on Redis keeps WeChat's token only sealed: a key for this run.
            PUBLISHER_SECRET_KEY=secrets.token_urlsafe(32),
            PUBLISHER_API_PORT=str(self.ports["api"]),
            PUBLISHER_PUBLIC_BASE_URL=self.api_base,
            PUBLISHER_WECHAT_CALLBACK_TOKEN=DEFAULT_SANDBOX_CREDENTIAL,
            PUBLISHER_WECHAT_APPID=DEFAULT_SANDBOX_CREDENTIAL,
            PUBLISHER_WECHAT_SECRET=DEFAULT_SANDBOX_SECRET,
            PUBLISHER_WEIBO_ACCESS_TOKEN=DEFAULT_SANDBOX_CREDENTIAL,
            # Fault-free and unpaced: the run measures our overhead, not Weibo's budgets.
            PUBLISHER_WEIBO_POSTS_PER_HOUR="1000000",
            # Nor WeChat's daily quotas (the sandbox's are lifted in `start_sandboxes`).
            PUBLISHER_WECHAT_DAILY_LIMITS=json.dumps(UNRATIONED_WECHAT),
            PUBLISHER_WEIBO_DAILY_CALLS="1000000",
            BENCH_BASELINE_BROKER=services.redis_url(services.baseline_db),
        )
        for kind in KINDS:
            env[f"PUBLISHER_{kind.upper()}_PORT"] = str(self.ports[kind])
            env[f"PUBLISHER_{kind.upper()}_API_BASE"] = self.sandbox[kind]
        for kind in ("website", "catalogue"):
            env[f"PUBLISHER_{kind.upper()}_APP_ID"] = DEFAULT_SANDBOX_CREDENTIAL
            env[f"PUBLISHER_{kind.upper()}_SECRET"] = DEFAULT_SANDBOX_SECRET
        self.env = env
        self.procs = Processes(env, var_dir / "logs")

    # --- processes ------------------------------------------------------------------------

    def start_sandboxes(self, wechat_publish_delay: float, latency_ms: int = 0) -> None:
        """The four sandboxes, at niceness 10: they stand in for the channels' own servers,
        which take none of our CPU, so here they take only what the system under test leaves
        (the same in both runs)."""
        self.procs.start("sandbox", [*CLI, "sandbox"], nice=10)
        for url in self.sandbox.values():
            wait_http(f"{url}/_sandbox/faults", 60)
            requests.post(
                f"{url}/_sandbox/faults", json={"latency_ms": latency_ms}, timeout=5
            ).raise_for_status()
        requests.post(
            f"{self.sandbox['weibo']}/_sandbox/weibo/config",
            json={"rate_limit": 1_000_000, "daily_calls": 1_000_000},
            timeout=5,
        ).raise_for_status()
        self.wechat_settings(
            publish_delay_seconds=wechat_publish_delay,
            daily_quotas=dict.fromkeys(DAILY_QUOTAS, 1_000_000_000),
        )

    def wechat_settings(self, **changes: object) -> None:
        requests.post(
            f"{self.sandbox['wechat']}/_sandbox/wechat", json=changes, timeout=5
        ).raise_for_status()

    def start_product(self) -> int:
        """API, worker and beat; returns the worker's pid. The sandbox calls the API back."""
        self.procs.start("api", [*self.api_cli, "api", "--port", str(self.ports["api"])])
        worker = self.procs.start(
            "worker", [*CLI, "worker", "--concurrency", str(self.concurrency), "--pool", "prefork"]
        )
        self.procs.start("beat", [*CLI, "beat"])
        wait_http(f"{self.api}/healthz", 60)
        self.wechat_settings(
            callback_url=f"{self.api_base}/wechat/callback",
            callback_token=DEFAULT_SANDBOX_CREDENTIAL,
        )
        return worker

    def stop_product(self) -> None:
        for name in ("beat", "worker", "api"):
            self.procs.stop(name)
        self.wechat_settings(callback_url="")

    def start_baseline(self) -> int:
        queues = ",".join(f"baseline.{kind}" for kind in KINDS)
        argv = [sys.executable, "-m", "celery", "-A", "bench.baseline", "worker"]
        argv += ["-Q", queues, "--concurrency", str(self.concurrency), "--pool", "prefork"]
        argv += ["--loglevel", "INFO"]  # as `publisher worker` runs it
        return self.procs.start("baseline", argv)

    def stop(self) -> None:
        self.procs.stop_all()
