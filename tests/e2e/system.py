"""Real processes for end-to-end tests: sandboxes, API, Celery worker and beat.

`System` starts each as `publisher <command>` in its own process group (so `kill -9` of the
worker takes its pool children with it) with one shared environment, and talks to them over
HTTP only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support import free_port

CLI = [sys.executable, "-c", "from publisher.cli import main; main()"]
SANDBOX_KINDS = ("website", "catalogue")


class System:
    def __init__(self, var_dir: Path, extra_env: dict[str, str]) -> None:
        self.var_dir = var_dir
        self.ports = {kind: free_port() for kind in ("api", *SANDBOX_KINDS)}
        self.api = f"http://127.0.0.1:{self.ports['api']}/api/v1"
        self.sandbox = {k: f"http://127.0.0.1:{self.ports[k]}" for k in SANDBOX_KINDS}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
        env.update(
            PUBLISHER_VAR_DIR=str(var_dir),
            PUBLISHER_API_PORT=str(self.ports["api"]),
            PUBLISHER_WEBSITE_PORT=str(self.ports["website"]),
            PUBLISHER_CATALOGUE_PORT=str(self.ports["catalogue"]),
            PUBLISHER_LEASE_SECONDS="6",
            PUBLISHER_SWEEP_INTERVAL_SECONDS="1",
            PUBLISHER_RESEND_AFTER_SECONDS="2",
            PUBLISHER_BACKOFF_BASE_SECONDS="0.5",
            PUBLISHER_BACKOFF_CAP_SECONDS="2",
            PUBLISHER_HTTP_TIMEOUT_SECONDS="2",
        )
        for kind in SANDBOX_KINDS:
            env[f"PUBLISHER_{kind.upper()}_API_BASE"] = self.sandbox[kind]
            env[f"PUBLISHER_{kind.upper()}_APP_ID"] = "sandbox"
            env[f"PUBLISHER_{kind.upper()}_SECRET"] = "sandbox-secret"
        env.update(extra_env)
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.headers: dict[str, str] = {}  # an admin's, once the store is migrated
        self.reviewers: list[dict[str, str]] = []  # two reviewers' of 社管局, made on demand

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def start(self, name: str, *args: str) -> None:
        log = (self.var_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [*CLI, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def sign_in_as_admin(self) -> None:
        """API calls from here on carry a token of an admin made with the CLI (`publisher
        token create --role admin`: the store must be migrated)."""
        made = self.run("token", "create", "--role", "admin", "--label", "tests")
        assert made.returncode == 0, made.stderr
        self.headers = {"Authorization": f"Bearer {made.stdout.strip()}"}

    def review(self, item_id: int) -> None:
        """Submit the item (as the admin) and approve both stages of its domain, each by
        another reviewer of 社管局, made with the CLI (`publisher token create --role
        reviewer`)."""
        while len(self.reviewers) < 2:
            made = self.run("token", "create", "--role", "reviewer", "--department", "sgj")
            assert made.returncode == 0, made.stderr
            self.reviewers.append({"Authorization": f"Bearer {made.stdout.strip()}"})
        self.call("POST", f"/items/{item_id}/submit")
        for headers in self.reviewers:
            resp = requests.post(f"{self.api}/items/{item_id}/approve", headers=headers, timeout=15)
            assert resp.status_code == 200, (resp.status_code, resp.text)

    def start_all(self) -> None:
        done = self.run("db", "upgrade")
        assert done.returncode == 0, done.stderr
        self.sign_in_as_admin()
        self.start("sandbox", "sandbox", *[a for k in SANDBOX_KINDS for a in ("--only", k)])
        self.start("api", "api", "--port", str(self.ports["api"]))
        self.start_worker()
        self.start("beat", "beat")
        wait_for(lambda: _up(f"{self.api}/healthz"), 60, "the API to answer")
        for url in self.sandbox.values():
            wait_for(lambda url=url: _up(f"{url}/_sandbox/faults"), 30, "the sandboxes")

    def start_worker(self) -> None:
        self.start("worker", "worker", "--concurrency", "2")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(30)

    def stop(self) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def niceness(self, name: str) -> set[int]:
        """The niceness of every process in `name`'s process group (a worker and its pool)."""
        return {nice for _, nice in self._group(name)}

    def group_size(self, name: str) -> int:
        return len(self._group(name))

    def _group(self, name: str) -> list[tuple[int, int]]:
        """(pid, nice) of each process in `name`'s process group, from `/proc/*/stat`."""
        group = self.procs[name].pid
        found = []
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()  # from field 3, the state
            if fields and int(fields[2]) == group:  # field 5, the process group
                found.append((int(entry.name), int(fields[16])))  # field 19, nice
        return found

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.var_dir.glob("*.log"))
        )

    # API helpers

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = requests.request(method, self.api + path, headers=self.headers, timeout=15, **kwargs)
        assert resp.status_code < 300, (resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def deliveries(self, item_id: int) -> dict[str, dict[str, Any]]:
        item = self.call("GET", f"/items/{item_id}")
        return {d["channel"]: d for d in item["deliveries"]}

    def wait_states(self, item_id: int, want: str, timeout: float = 60) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            found = self.deliveries(item_id)
            return found if found and all(d["state"] == want for d in found.values()) else None

        return wait_for(settled, timeout, f"item {item_id} to be {want} everywhere", self)

    def faults(self, kind: str, **changes: Any) -> None:
        requests.post(f"{self.sandbox[kind]}/_sandbox/faults", json=changes, timeout=5)

    def inspect(self, kind: str) -> dict[str, Any]:
        body: dict[str, Any] = requests.get(
            f"{self.sandbox[kind]}/_sandbox/state", timeout=5
        ).json()
        return body


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_for(
    probe: Callable[[], Any], timeout: float, what: str, system: System | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    detail = system.logs() if system else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail}")
