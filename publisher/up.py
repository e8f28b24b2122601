"""`publisher up`: the whole system in one process group on one machine.

Children: the channel sandboxes, the API, a Celery worker and Celery beat. A channel whose base
URL is set in the environment uses it; the others point at their sandbox with the sandbox
credentials. Ctrl-C or SIGTERM stops every child.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from channels.registry import KINDS
from publisher.config import (
    CHANNELS_ENV_FILE,
    DEFAULT_SANDBOX_CREDENTIAL,
    DEFAULT_SANDBOX_SECRET,
    Settings,
    get_settings,
    reset_settings,
)
from publisher.db import get_database, reset_database
from publisher.migrate import upgrade
from publisher.sandbox_wiring import wait_http, wire_wechat_callback
from publisher.services.queries import counts_by_state

CLI = [sys.executable, "-c", "from publisher.cli import main; main()"]
# How long the API may take to answer. It imports at the same time as the sandboxes, the
# worker and beat, and on two busy cores (a laptop building, a machine running other tests)
# that took over 30 s.
API_START_SECONDS = 120.0


# What makes a channel configured for real: where it is and who we are to it.
CREDENTIALS = ("_API_BASE", "_APP_ID", "_APPID", "_SECRET", "_ACCESS_TOKEN")


def sandbox_environment(
    settings: Settings, environ: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Environment for the children, and the channel kinds that use a local sandbox.

    A channel with none of its endpoint or credential variables set (`PUBLISHER_<KIND>_`
    + `API_BASE`, `APP_ID`, `APPID`, `SECRET`, `ACCESS_TOKEN`) uses its sandbox; one with any
    of them set is taken as configured for real. Its policies (a daily limit, the Weibo
    `RIP`, its port) do not decide: they apply to the sandbox as to the real channel.
    """
    env = dict(environ)
    sandboxed = []
    ports = {
        "website": settings.website_port,
        "catalogue": settings.catalogue_port,
        "wechat": settings.wechat_port,
        "weibo": settings.weibo_port,
    }
    for kind in KINDS:
        base_var = f"PUBLISHER_{kind.upper()}_API_BASE"
        if any(
            name.startswith(f"PUBLISHER_{kind.upper()}_") and name.endswith(CREDENTIALS)
            for name in environ
        ):
            continue  # configured for real: never send real credentials to a sandbox
        sandboxed.append(kind)
        env[base_var] = f"http://127.0.0.1:{ports[kind]}"
        if kind in ("website", "catalogue"):
            env.setdefault(f"PUBLISHER_{kind.upper()}_APP_ID", DEFAULT_SANDBOX_CREDENTIAL)
            env.setdefault(f"PUBLISHER_{kind.upper()}_SECRET", DEFAULT_SANDBOX_SECRET)
        elif kind == "wechat":
            env.setdefault("PUBLISHER_WECHAT_APPID", DEFAULT_SANDBOX_CREDENTIAL)
            env.setdefault("PUBLISHER_WECHAT_SECRET", DEFAULT_SANDBOX_SECRET)
            env.setdefault("PUBLISHER_WECHAT_CALLBACK_TOKEN", DEFAULT_SANDBOX_CREDENTIAL)
            # Safe mode (安全模式) as a real account should run it, with a key made per start.
            env.setdefault("PUBLISHER_WECHAT_AES_KEY", new_encoding_aes_key())
        elif kind == "weibo":
            env.setdefault("PUBLISHER_WEIBO_ACCESS_TOKEN", DEFAULT_SANDBOX_CREDENTIAL)
    return env, sandboxed


def new_encoding_aes_key() -> str:
    """A WeChat EncodingAESKey: 32 random bytes in base64, without its padding (43 chars)."""
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def write_channels_env(settings: Settings, env: dict[str, str], sandboxed: list[str]) -> None:
    """Record the sandbox endpoints chosen here for later commands (see `get_settings`)."""
    names = sorted(
        name
        for name in env
        if any(name.startswith(f"PUBLISHER_{kind.upper()}_") for kind in sandboxed)
        and name not in os.environ
    )
    path = settings.var_dir / CHANNELS_ENV_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `publisher up`: the local channel sandboxes it started."]
    path.write_text("\n".join([*lines, *(f"{name}={env[name]}" for name in names)]) + "\n")


# (name, role, departments, password) of each demo user, to print once.
DemoUser = tuple[str, str, list[str], str]


def seed_users_for_demo(settings: Settings, sandboxed: list[str]) -> list[DemoUser]:
    """One user per role with a new password each start, when every channel is a local
    sandbox; none when any channel is real (printed passwords must never reach a real
    account's publishing)."""
    if set(sandboxed) != set(KINDS):
        return []
    from publisher.services.users import seed_demo_users

    with get_database(settings).session() as session:
        return [
            (user.name, user.role.value, [d.code for d in user.departments], password)
            for user, password in seed_demo_users(session)
        ]


class Children:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [*CLI, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def delivery_summary(settings: Settings) -> str:
    with get_database(settings).session() as session:
        counts = counts_by_state(session)
    parts = [
        f"{kind}: " + " ".join(f"{state}={n}" for state, n in sorted(counts[kind].items()))
        for kind in KINDS
        if counts.get(kind)
    ]
    return " | ".join(parts) or "no deliveries yet"


def run_up(demo: bool = True) -> int:
    settings = get_settings()
    env, sandboxed = sandbox_environment(settings, dict(os.environ))
    write_channels_env(settings, env, sandboxed)
    os.environ.update(env)  # this process loads the demo with the children's configuration
    reset_settings()
    reset_database()
    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    users = seed_users_for_demo(settings, sandboxed) if demo else []

    children = Children(env, settings.var_dir / "logs")
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if sandboxed:
            children.start(
                "sandbox",
                "sandbox",
                "--data-dir",
                str(settings.var_dir / "sandbox"),
                *[arg for kind in sandboxed for arg in ("--only", kind)],
            )
        children.start("api", "api", "--host", settings.api_host, "--port", str(settings.api_port))
        children.start("worker", "worker")
        children.start("beat", "beat")
        api = f"http://{settings.api_host}:{settings.api_port}"
        if not wait_http(f"{api}/api/v1/healthz", API_START_SECONDS):
            print(
                f"the API did not start; see {settings.var_dir / 'logs' / 'api.log'}",
                file=sys.stderr,
            )
            return 1
        for kind in sandboxed:
            wait_http(env[f"PUBLISHER_{kind.upper()}_API_BASE"] + "/_sandbox/faults", 15)
        if (
            "wechat" in sandboxed
        ):  # the sandbox tells us when a publish job finishes, as WeChat does
            wire_wechat_callback(
                env["PUBLISHER_WECHAT_API_BASE"],
                f"{api}/wechat/callback",
                env["PUBLISHER_WECHAT_CALLBACK_TOKEN"],
                env.get("PUBLISHER_WECHAT_AES_KEY", ""),
            )
        if demo:
            from publisher.delivery.publication import ChannelPool
            from publisher.demo import load_demo
            from publisher.shared import shared_store

            pool = ChannelPool(settings, shared_store(settings))
            enabled = [k for k in KINDS if pool.disabled_reason(k) is None]
            with get_database(settings).session() as session:
                created = load_demo(session, settings, enabled_kinds=enabled)
            print(
                f"demo: {len(created)} items created and published"
                if created
                else "demo: the store already has items; nothing loaded"
            )
        print_where_to_look(settings, env, sandboxed, users)
        last = ""
        while not stopping:
            dead = children.dead()
            if dead:
                print(
                    f"stopped unexpectedly: {', '.join(dead)} (logs in "
                    f"{settings.var_dir / 'logs'})",
                    file=sys.stderr,
                )
                return 1
            summary = delivery_summary(settings)
            if summary != last:
                print(time.strftime("%H:%M:%S"), summary, flush=True)
                last = summary
            for _ in range(20):
                if stopping:
                    break
                time.sleep(0.1)
        print("stopping…", flush=True)
        return 0
    finally:
        children.stop()


def print_where_to_look(
    settings: Settings, env: dict[str, str], sandboxed: list[str], users: list[DemoUser]
) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "",
        "publisher is running (Ctrl-C stops everything)",
        f"  console             {api}/   (sign in at {api}/login with a user below)",
        f"  API docs            {api}/docs",
        f"  metrics             {api}/api/v1/metrics (an operator's token)",
    ]
    if settings.metrics_token:
        lines.append(
            f"  scrape              curl -H 'Authorization: Bearer $PUBLISHER_METRICS_TOKEN' "
            f"{api}/metrics"
        )
    if users:
        lines.append("  demo users          (sandbox only; new passwords at every start)")
        for name, role, departments, password in users:
            where = f" of {','.join(departments)}" if departments else ""
            lines.append(f"    {name:<12} {password}   {role}{where}")
        lines.append(
            f"  sign in             curl -X POST {api}/api/v1/login "
            """-H 'Content-Type: application/json' -d '{"name": "admin", "password": "…"}'"""
        )
    lines.append("  an API token        .venv/bin/publisher token create --user NAME")
    if "website" in sandboxed:
        lines.append(f"  sandbox website     {env['PUBLISHER_WEBSITE_API_BASE']}/")
    if "catalogue" in sandboxed:
        lines.append(
            f"  catalogue listing   {env['PUBLISHER_CATALOGUE_API_BASE']}/{settings.org_code}"
            f"/zwgkList.shtml?catecode={settings.catalogue_section}"
        )
    if "wechat" in sandboxed:
        lines.append(f"  sandbox WeChat      {env['PUBLISHER_WECHAT_API_BASE']}/_sandbox/state")
    if "weibo" in sandboxed:
        lines.append(f"  sandbox Weibo       {env['PUBLISHER_WEIBO_API_BASE']}/_sandbox/state")
    lines += [f"  logs                {settings.var_dir / 'logs'}/", ""]
    print("\n".join(lines), flush=True)
