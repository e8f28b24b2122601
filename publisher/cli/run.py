"""Running the processes: `api`, `worker`, `beat`, `sandbox`, `up` and `db upgrade`.

The composition root: the only module in `publisher/` that may import `workers`, and only in
the commands that start a worker or beat.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from contextlib import suppress
from pathlib import Path

import click
import requests

from channels.registry import KINDS
from publisher.config import get_settings


@click.command()
@click.option("--host", default=None, help="default: PUBLISHER_API_HOST or 127.0.0.1")
@click.option("--port", type=int, default=None, help="default: PUBLISHER_API_PORT or 8000")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="API processes; default: PUBLISHER_API_WORKERS, else 1 on SQLite and one per CPU "
    "(at least 2) on PostgreSQL",
)
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the REST API (and /healthz, /metrics)."""
    # uvicorn (about 1 MB) stays out of the worker processes, whose RSS the benchmark reports.
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    workers = workers or settings.resolved_api_workers()
    app = "publisher.api.app:serve_app"
    # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default; the app decides whom
    # to believe (PUBLISHER_TRUSTED_PROXIES, publisher/api/client_address.py).
    if workers == 1:
        uvicorn.run(app, factory=True, host=host, port=port, log_level="info", proxy_headers=False)
        return
    config = uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=False,
    )
    # As `uvicorn.run` does for several workers, but on a socket that keeps Nagle off.
    Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()


def tcp_listener(bound: socket.socket) -> socket.socket:
    """The bound socket `bound`, said to be TCP. uvicorn binds the socket its workers share
    with protocol 0; asyncio then leaves Nagle's algorithm on for every connection accepted
    on it, and each answer on a kept-alive connection waits some 40 ms for the client's
    delayed ACK (Kludex/uvicorn#3149)."""
    listener = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    listener.set_inheritable(True)
    return listener


@click.command()
@click.option("--queues", default=None, help="comma-separated; default: control + every channel")
@click.option("--concurrency", type=int, default=None)
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default=None)
@click.option("--hostname", default=None)
def worker(
    queues: str | None, concurrency: int | None, pool: str | None, hostname: str | None
) -> None:
    """Run a Celery worker for the delivery queues, at a lower CPU priority than the API
    (`PUBLISHER_WORKER_NICE`, default 10; its pool processes inherit it)."""
    # Importing workers.app builds the Celery app: only the worker and beat commands do.
    from workers.app import app, queue_for

    if nice := get_settings().worker_nice:
        os.nice(nice)
    argv = ["worker", "--loglevel", "INFO"]
    argv += ["-Q", queues or ",".join(["control", *(queue_for(k) for k in KINDS)])]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if pool:
        argv += ["--pool", pool]
    if hostname:
        argv += ["--hostname", hostname]
    app.worker_main(argv)


@click.command()
def beat() -> None:
    """Run Celery beat (the sweeper that re-sends due deliveries)."""
    # Importing workers.app builds the Celery app: only the worker and beat commands do.
    from workers.app import app

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    schedule = settings.var_dir / "celerybeat-schedule"
    app.start(["beat", "--loglevel", "INFO", "--schedule", str(schedule)])


@click.command()
@click.option("--only", "only", multiple=True, type=click.Choice(KINDS), help="repeatable")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--weibo-safe-domain",
    "safe_domains",
    multiple=True,
    help="a host the Weibo sandbox accepts in links, besides 127.0.0.1 and localhost "
    "(repeatable; the website sandbox's host when the API reaches it by another name)",
)
@click.option(
    "--wechat-callback-url",
    default=None,
    help="where the WeChat sandbox reports finished publish jobs (the API's "
    "/wechat/callback), signed with PUBLISHER_WECHAT_CALLBACK_TOKEN",
)
def sandbox(
    only: tuple[str, ...],
    data_dir: Path | None,
    host: str,
    safe_domains: tuple[str, ...],
    wechat_callback_url: str | None,
) -> None:
    """Run the local channel sandboxes (website, catalogue, WeChat, Weibo)."""
    # FastAPI and the four sandbox apps (about 8 MB): kept out of the worker processes.
    from channels.sandbox.server import serve_sandboxes

    settings = get_settings()
    if wechat_callback_url and not settings.wechat_callback_token:
        raise click.UsageError(
            "--wechat-callback-url: set PUBLISHER_WECHAT_CALLBACK_TOKEN to the API's token"
        )
    ports = {kind: getattr(settings, f"{kind}_port") for kind in (only or KINDS)}
    for kind, port in ports.items():
        click.echo(f"{kind:<10} http://{host}:{port}")
    reach = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # wildcards: ask loopback
    local = {kind: f"http://{reach}:{port}" for kind, port in ports.items()}
    threading.Thread(
        target=wire_sandboxes,
        args=(
            local,
            safe_domains,
            wechat_callback_url,
            settings.wechat_callback_token,
            settings.wechat_aes_key or "",
        ),
        daemon=True,
    ).start()
    with suppress(KeyboardInterrupt):
        asyncio.run(serve_sandboxes(ports, host=host, data_dir=data_dir))


def wire_sandboxes(
    bases: dict[str, str],
    safe_domains: tuple[str, ...],
    callback_url: str | None,
    callback_token: str | None,
    callback_aes_key: str = "",
) -> None:
    """Once the sandboxes answer, give Weibo its safe domains and WeChat its callback, in
    safe mode when the API has an AES key (at
    every start: the WeChat sandbox keeps its settings in memory). Failures are reported,
    not raised: the sandboxes serve on without them."""
    from publisher.sandbox_wiring import allow_weibo_links, wait_http, wire_wechat_callback

    wanted = {"weibo": bool(safe_domains), "wechat": bool(callback_url and callback_token)}
    try:
        for kind in (kind for kind, want in wanted.items() if want and kind in bases):
            if not wait_http(f"{bases[kind]}/_sandbox/state"):
                click.echo(f"sandbox wiring: {kind} did not answer", err=True)
            elif kind == "weibo":
                allow_weibo_links(bases[kind], safe_domains)
                click.echo(f"weibo      links to {', '.join(safe_domains)} accepted")
            else:
                wire_wechat_callback(
                    bases[kind], callback_url or "", callback_token or "", callback_aes_key
                )
                click.echo(f"wechat     publish jobs reported to {callback_url}")
    except requests.RequestException as exc:
        click.echo(f"sandbox wiring failed: {exc}", err=True)


@click.command()
@click.option("--demo/--no-demo", default=True, help="load demonstration items")
def up(demo: bool) -> None:
    """Run everything on this machine: API, worker, beat, sandboxes."""
    # publisher.up loads Alembic (about 8 MB): kept out of the worker and API processes.
    from publisher.up import run_up

    sys.exit(run_up(demo=demo))


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    # Alembic (about 8 MB): kept out of the worker and API processes.
    from publisher.migrate import upgrade

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    click.echo("database is up to date")
