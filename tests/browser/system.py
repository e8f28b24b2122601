"""`publisher up --demo` for the browser tests: the whole system as `make run` starts it (API
and console, Celery worker and beat, the four channel sandboxes, demo items and demo users),
on a PostgreSQL database and a Redis key space of its own.

The database is not `tests.support.fresh_postgres`'s: that one is dropped and made anew by
every test that asks for it, and this system lives through all the browser tests. The demo
users' passwords, new at every start, are read from what `publisher up` prints, as a person
running `make run` reads them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

from tests.support import PG_DATABASE, PG_SERVER, RedisSpace, free_port, require_service

CLI = [sys.executable, "-c", "from publisher.cli import main; main()"]
SANDBOX_KINDS = ("website", "catalogue", "wechat", "weibo")
ORG_CODE = "733099896"
# Quick sweeps and short backoffs, so that a flow waiting for a retry or a live post takes
# seconds (the values tests/e2e/system.py runs with).
FAST_SYNC = {
    "PUBLISHER_LEASE_SECONDS": "6",
    "PUBLISHER_SWEEP_INTERVAL_SECONDS": "1",
    "PUBLISHER_RESEND_AFTER_SECONDS": "2",
    "PUBLISHER_BACKOFF_BASE_SECONDS": "0.5",
    "PUBLISHER_BACKOFF_CAP_SECONDS": "2",
    "PUBLISHER_HTTP_TIMEOUT_SECONDS": "2",
    # One API process (on PostgreSQL it would be one per CPU): a browser is one client, and
    # on two busy cores the start waits for every process's imports.
    "PUBLISHER_API_WORKERS": "1",
}
# One line per demo user under "demo users" in `publisher up`'s output (publisher/up.py,
# `print_where_to_look`): name, password, role and, for editors and reviewers, departments.
DEMO_USER_LINE = re.compile(
    r"^ {4}(?P<name>\S+) +(?P<password>\S+) {3}(?P<role>[a-z]+)(?: of (?P<departments>\S+))?$"
)


@dataclass(frozen=True)
class DemoUser:
    name: str
    password: str
    role: str
    departments: tuple[str, ...]


@dataclass(frozen=True)
class RunningSystem:
    """What the browser tests reach: the API and console at `base_url`, each sandbox at
    `sandboxes[kind]`, and the demo users by name (`admin`, `editor`, `reviewer`,
    `operator`, `supervisor`; editor and reviewer of 社管局 `sgj`)."""

    base_url: str
    sandboxes: dict[str, str]
    users: dict[str, DemoUser]
    var_dir: Path
    output: Path  # what `publisher up` printed

    @property
    def catalogue_listing(self) -> str:
        """The catalogue sandbox's public listing of the social public-welfare section."""
        return f"{self.sandboxes['catalogue']}/{ORG_CODE}/zwgkList.shtml?catecode=0900"

    def logs(self) -> str:
        """The tail of `publisher up`'s output and of each child's log, for failure messages."""
        parts = []
        for path in [self.output, *sorted((self.var_dir / "logs").glob("*"))]:
            if path.is_file():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


class PublisherUp:
    """`publisher up --demo` in a process group of its own, its output in `{root}/up.out`."""

    def __init__(self, root: Path, redis_space: RedisSpace, extra_env: dict[str, str]) -> None:
        self.root = root
        self.redis_space = redis_space
        self.database = f"{PG_DATABASE}_browser"
        self.ports = {name: free_port() for name in ("api", *SANDBOX_KINDS)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
        env.update({f"PUBLISHER_{name.upper()}_PORT": str(p) for name, p in self.ports.items()})
        env.update(FAST_SYNC)
        env.update(redis_space.env())
        env["PUBLISHER_VAR_DIR"] = str(root / "var")
        env["PUBLISHER_DATABASE_URL"] = f"{PG_SERVER}/{self.database}"
        env.update(extra_env)
        self.env = env
        self.output = root / "up.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.database_made = False

    def start(self, timeout: float = 200) -> RunningSystem:
        """Start it and wait until it says where to look; raises AssertionError with its
        output when it does not get there."""
        self._create_database()
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                [*CLI, "up", "--demo"],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        system = RunningSystem(
            base_url=f"http://127.0.0.1:{self.ports['api']}",
            sandboxes={kind: f"http://127.0.0.1:{self.ports[kind]}" for kind in SANDBOX_KINDS},
            users={},
            var_dir=self.root / "var",
            output=self.output,
        )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"publisher up exited with {self.proc.returncode}\n{system.logs()}"
                )
            return "publisher is running" in self.output.read_text(errors="replace")

        wait_for(ready, timeout, "publisher up to say where to look", system.logs)
        # "publisher is running" comes with the rest of the block in one print.
        users = demo_users(self.output.read_text())
        assert users, f"publisher up printed no demo users\n{system.logs()}"
        wait_for(lambda: answers(f"{system.base_url}/api/v1/healthz"), 30, "the API", system.logs)
        return replace(system, users=users)

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C would (it stops its children); SIGKILL to the whole group if
        it has not stopped in 30 s. Then the database and the Redis keys go."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        finally:
            self._drop_database()
            self.redis_space.delete_keys()

    def _create_database(self) -> None:
        def create() -> None:
            _on_server(
                f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)',
                f'CREATE DATABASE "{self.database}"',
            )

        require_service("PostgreSQL at 127.0.0.1:5432", create)
        self.database_made = True

    def _drop_database(self) -> None:
        if self.database_made:
            _on_server(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def demo_users(output: str) -> dict[str, DemoUser]:
    """The demo users listed under "demo users" in `publisher up`'s output, by name."""
    users: dict[str, DemoUser] = {}
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("demo users")), None)
    if start is None:
        return users
    for line in lines[start + 1 :]:
        match = DEMO_USER_LINE.match(line)
        if match is None:
            break
        departments = match["departments"]
        users[match["name"]] = DemoUser(
            match["name"],
            match["password"],
            match["role"],
            tuple(departments.split(",")) if departments else (),
        )
    return users


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def wait_for(
    probe: Callable[[], Any], timeout: float, what: str, details: Callable[[], str] = str
) -> Any:
    """`probe()`'s first truthy value, asked every quarter second; AssertionError naming
    `what` (and `details()`) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{details()}")


def _on_server(*statements: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        admin.dispose()
