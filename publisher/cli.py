"""The `publisher` command (DESIGN §6): run the processes, and operate the store directly.

Item, job, channel and scope commands use the same services as the API, on the database the
settings name, in one transaction per command, audited with the actor "cli". Bad input exits
with status 2 and one line per problem naming the field and the rule.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from channels.registry import KINDS
from publisher.cli_bench import bench
from publisher.cli_drift import drift
from publisher.config import Settings, get_settings
from publisher.errors import Conflict, Forbidden, InvalidInput, NotFound, PublisherError
from publisher.models import DeliveryState
from publisher.services.deliveries import ChannelPool

ACTOR = "cli"
SETTLED = {"live", "withdrawn", "failed", "cancelled"}
F = TypeVar("F", bound=Callable[..., Any])


# --- plumbing ----------------------------------------------------------------------------------


def fail_on_service_errors(func: F) -> F:
    """Turn service errors into one-line messages: exit 2 for bad input, 1 otherwise."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            for p in exc.problems:
                where = f" [{p.channel}]" if p.channel else ""
                click.echo(f"error: {p.field} ({p.rule}){where}: {p.message}", err=True)
            sys.exit(2)
        except (NotFound, Conflict, Forbidden, PublisherError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@contextmanager
def unit_of_work() -> Iterator[tuple[Session, Settings]]:
    from publisher.db import get_database

    settings = get_settings()
    with get_database(settings).session() as session:
        yield session, settings


def warm_channel_pool(settings: Settings) -> ChannelPool:
    """Adapters built before any session opens (on SQLite they read the shared store)."""
    from publisher.db import get_database
    from publisher.services.channels import warm_pool
    from publisher.shared import shared_store

    pool = ChannelPool(settings, shared_store(settings, get_database(settings)))
    warm_pool(pool)
    return pool


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def clip(text: str, width: int = 48) -> str:
    if display_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if display_width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An aligned plain-text table (CJK characters count as two columns)."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [
        max([display_width(c.upper()), *(display_width(r[i]) for r in cells)])
        for i, c in enumerate(columns)
    ]
    lines = ["  ".join(pad(c.upper(), w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(pad(v, w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return clip(str(value))


def show_pairs(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(display_width(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{pad(key, width)}  {'-' if value is None else value}")


# --- the group ---------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """publisher: publish once, reach every channel."""


cli = main  # the entry point (`publisher.cli:main`) is the click group itself


@main.command()
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
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    workers = workers or settings.resolved_api_workers()
    app = "publisher.api.app:serve_app"
    if workers == 1:
        uvicorn.run(app, factory=True, host=host, port=port, log_level="info")
        return
    config = uvicorn.Config(
        app, factory=True, host=host, port=port, workers=workers, log_level="info"
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


@main.command()
@click.option("--queues", default=None, help="comma-separated; default: control + every channel")
@click.option("--concurrency", type=int, default=None)
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default=None)
@click.option("--hostname", default=None)
def worker(
    queues: str | None, concurrency: int | None, pool: str | None, hostname: str | None
) -> None:
    """Run a Celery worker for the delivery queues, at a lower CPU priority than the API
    (`PUBLISHER_WORKER_NICE`, default 10; its pool processes inherit it)."""
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


@main.command()
def beat() -> None:
    """Run Celery beat (the sweeper that re-sends due deliveries)."""
    from workers.app import app

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    schedule = settings.var_dir / "celerybeat-schedule"
    app.start(["beat", "--loglevel", "INFO", "--schedule", str(schedule)])


@main.command()
@click.option("--only", "only", multiple=True, type=click.Choice(KINDS), help="repeatable")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
def sandbox(only: tuple[str, ...], data_dir: Path | None, host: str) -> None:
    """Run the local channel sandboxes (website, catalogue, WeChat, Weibo)."""
    from channels.sandbox.server import serve_sandboxes

    settings = get_settings()
    ports = {kind: getattr(settings, f"{kind}_port") for kind in (only or KINDS)}
    for kind, port in ports.items():
        click.echo(f"{kind:<10} http://{host}:{port}")
    with suppress(KeyboardInterrupt):
        asyncio.run(serve_sandboxes(ports, host=host, data_dir=data_dir))


@main.command()
@click.option("--demo/--no-demo", default=True, help="load demonstration items")
def up(demo: bool) -> None:
    """Run everything on this machine: API, worker, beat, sandboxes."""
    from publisher.up import run_up

    sys.exit(run_up(demo=demo))


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    from publisher.migrate import upgrade

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    click.echo("database is up to date")


@main.group()
def token() -> None:
    """API bearer tokens."""


@token.command("create")
@click.option(
    "--role", required=True, type=click.Choice(["admin", "editor", "operator", "supervisor"])
)
@click.option("--department", default=None, help="limit an editor to one department")
@click.option("--label", default=None)
@fail_on_service_errors
def token_create(role: str, department: str | None, label: str | None) -> None:
    """Create a token and print it (only this once: only its hash is stored)."""
    from publisher.auth import create_token
    from publisher.services.items import audit

    with unit_of_work() as (session, _):
        plaintext = create_token(session, role, department, label)
        audit(session, ACTOR, "token.create", f"role:{role}", department=department, label=label)
    click.echo(plaintext)


# --- items -------------------------------------------------------------------------------------


@main.group()
def items() -> None:
    """Write, publish and retract items."""


@items.command("list")
@click.option("--status", type=click.Choice(["draft", "published", "retracted"]), default=None)
@click.option("--domain", default=None)
@click.option("--department", default=None)
@click.option("--limit", type=int, default=50)
def items_list(status: str | None, domain: str | None, department: str | None, limit: int) -> None:
    """Items, newest first."""
    from publisher.services.queries import Page, list_items

    with unit_of_work() as (session, _):
        found = list_items(
            session, Page(limit=limit), status=status, domain=domain, department=department
        )
    columns = ["id", "status", "index_no", "domain", "department", "title"]
    click.echo(table(found["results"], columns))
    click.echo(f"({len(found['results'])} of {found['total']})")


@items.command("show")
@click.argument("item_id", type=int)
@fail_on_service_errors
def items_show(item_id: int) -> None:
    """An item, its latest revision and its deliveries."""
    from publisher.services.queries import item_view

    with unit_of_work() as (session, _):
        view = item_view(session, item_id)
    print_item(view)


def print_item(view: dict[str, Any]) -> None:
    rev = view["revision"] or {}
    show_pairs(
        [
            ("id", view["id"]),
            ("status", view["status"]),
            ("title", rev.get("title")),
            ("index_no", view["index_no"]),
            ("domain", view["domain"]),
            ("department", view["department"]),
            ("formed_on", rev.get("formed_on")),
            ("doc_number", rev.get("doc_number")),
            ("revision", rev.get("number")),
            ("channels", ",".join(view["channels"]) or "(every enabled channel)"),
        ]
    )
    if view["deliveries"]:
        click.echo()
        click.echo(delivery_table(view["deliveries"]))


def delivery_table(deliveries: Sequence[dict[str, Any]]) -> str:
    rows = [
        {
            **d,
            "error": (
                f"{d['last_error']['code'] or d['last_error']['kind']}: "
                f"{d['last_error']['message'] or d['last_error']['explanation']}"
                if d["last_error"]
                else None
            ),
        }
        for d in deliveries
    ]
    return table(rows, ["id", "channel", "state", "attempts", "url", "error"])


def item_options(func: F) -> F:
    options = [
        click.option("--title"),
        click.option("--summary"),
        click.option("--short-title"),
        click.option("--domain"),
        click.option("--department"),
        click.option("--doc-number"),
        click.option("--formed-on", type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD"),
        click.option("--body-html"),
        click.option("--body-markdown"),
        click.option(
            "--body-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="*.md is Markdown, anything else HTML",
        ),
        click.option("--keyword", "keywords", multiple=True, help="repeatable"),
        click.option("--cover-image", help="an image URL"),
        click.option("--channel", "channels", multiple=True, type=click.Choice(KINDS)),
        click.option("--push", "push", multiple=True, help="WeChat tag id (repeatable)"),
        click.option("--push-all", is_flag=True, help="push to every WeChat follower"),
        click.option("--urgent/--not-urgent", default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def fields_from_options(options: dict[str, Any]) -> Any:
    from publisher.services.items import ItemFields

    body_html, body_markdown = options["body_html"], options["body_markdown"]
    body_file: Path | None = options["body_file"]
    if body_file is not None:
        text = body_file.read_text(encoding="utf-8")
        if body_file.suffix.lower() in (".md", ".markdown"):
            body_markdown = text
        else:
            body_html = text
    formed: datetime | None = options["formed_on"]
    push: list[str] | None = list(options["push"]) or None
    if options["push_all"]:
        push = []
    return ItemFields(
        title=options["title"],
        body_html=body_html,
        body_markdown=body_markdown,
        summary=options["summary"],
        short_title=options["short_title"],
        domain=options["domain"],
        department=options["department"],
        doc_number=options["doc_number"],
        formed_on=date(formed.year, formed.month, formed.day) if formed else None,
        keywords=list(options["keywords"]) or None,
        cover_image=options["cover_image"],
        channels=list(options["channels"]) or None,
        push=push,
        urgent=options["urgent"],
    )


@items.command("create")
@item_options
@fail_on_service_errors
def items_create(**options: Any) -> None:
    """Create a draft item (revision 1) and print its id."""
    from publisher.services.channels import disabled_map
    from publisher.services.items import create_item

    settings = get_settings()
    disabled = disabled_map(warm_channel_pool(settings))
    with unit_of_work() as (session, _):
        item = create_item(
            session, settings, fields_from_options(options), actor=ACTOR, disabled=disabled
        )
        item_id = item.id
    click.echo(f"created item {item_id}")


@items.command("edit")
@click.argument("item_id", type=int)
@item_options
@fail_on_service_errors
def items_edit(item_id: int, **options: Any) -> None:
    """Change fields of an item: a new revision (published channels follow it)."""
    from publisher.services.channels import edit_checked

    settings = get_settings()
    pool = warm_channel_pool(settings)
    with unit_of_work() as (session, _):
        rev = edit_checked(
            session, settings, item_id, fields_from_options(options), pool, actor=ACTOR
        )
        number = None if rev is None else rev.number
    click.echo(f"item {item_id}: " + (f"revision {number}" if number else "nothing changed"))


@items.command("publish")
@click.argument("item_id", type=int)
@click.option("--wait", is_flag=True, help="follow the deliveries until they settle")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="with --wait")
@fail_on_service_errors
def items_publish(item_id: int, wait: bool, timeout: float) -> None:
    """Preflight every channel, then publish. With --wait, exit 1 if any channel failed."""
    from publisher.services.channels import publish_checked
    from publisher.services.items import lock_item

    settings = get_settings()
    pool = warm_channel_pool(settings)
    with unit_of_work() as (session, _):
        item = publish_checked(session, settings, lock_item(session, item_id), pool, actor=ACTOR)
        index_no = item.index_no
    click.echo(f"item {item_id} published as {index_no}")
    if wait:
        sys.exit(follow_deliveries(item_id, timeout))


def follow_deliveries(item_id: int, timeout: float, interval: float = 0.5) -> int:
    """Show the item's deliveries until all settle: 0 if none failed, 1 if any did, 3 on
    timeout. On a terminal the table is redrawn in place; otherwise printed on each change."""
    from publisher.services.queries import item_view

    live = sys.stdout.isatty()
    deadline = time.monotonic() + timeout
    shown, lines = "", 0
    while True:
        with unit_of_work() as (session, _):
            deliveries = item_view(session, item_id)["deliveries"]
        text = delivery_table(deliveries)
        if text != shown:
            if live and lines:
                click.echo(f"\x1b[{lines}F\x1b[J", nl=False)
            click.echo(text)
            shown, lines = text, text.count("\n") + 1
        states = {d["state"] for d in deliveries}
        if deliveries and states <= SETTLED:
            failed = "failed" in states
            click.echo("some channels failed" if failed else "all channels settled")
            return 1 if failed else 0
        if time.monotonic() > deadline:
            click.echo(f"still not settled after {timeout:g}s", err=True)
            return 3
        time.sleep(interval)


@items.command("retract")
@click.argument("item_id", type=int)
@click.option("--reason", default=None)
@fail_on_service_errors
def items_retract(item_id: int, reason: str | None) -> None:
    """Withdraw an item from every channel."""
    from publisher.services.items import retract_item

    with unit_of_work() as (session, _):
        retract_item(session, item_id, actor=ACTOR, reason=reason)
    click.echo(f"item {item_id} retracted")


# --- jobs (deliveries) -------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """Deliveries: one job per item and channel."""


@jobs.command("list")
@click.option("--state", type=click.Choice([s.value for s in DeliveryState]), default=None)
@click.option("--channel", type=click.Choice(KINDS), default=None)
@click.option("--item", type=int, default=None)
@click.option("--limit", type=int, default=50)
def jobs_list(state: str | None, channel: str | None, item: int | None, limit: int) -> None:
    """Deliveries, most recently changed first."""
    from publisher.services.queries import Page, list_deliveries

    with unit_of_work() as (session, _):
        found = list_deliveries(session, Page(limit=limit), state=state, channel=channel, item=item)
    rows = [{**d, "item": d["item_id"], "next": d["next_attempt_at"]} for d in found["results"]]
    click.echo(table(rows, ["id", "item", "channel", "state", "attempts", "next", "explanation"]))
    click.echo(f"({len(rows)} of {found['total']})")


@jobs.command("show")
@click.argument("delivery_id", type=int)
@fail_on_service_errors
def jobs_show(delivery_id: int) -> None:
    """A delivery and every attempt made for it."""
    from publisher.services.queries import delivery_detail

    with unit_of_work() as (session, _):
        d = delivery_detail(session, delivery_id)
    error = d["last_error"] or {}
    show_pairs(
        [
            ("id", d["id"]),
            ("item", d["item_id"]),
            ("channel", d["channel"]),
            ("state", d["state"]),
            ("remote id", d["remote_id"]),
            ("url", d["url"]),
            ("next attempt", d["next_attempt_at"]),
            ("error code", error.get("code")),
            ("error message", error.get("message")),
            ("explanation", d["explanation"]),
        ]
    )
    if d["attempt_log"]:
        click.echo()
        rows = [
            {**a, "error": (a["error"] or {}).get("message"), "ms": a["duration_ms"]}
            for a in d["attempt_log"]
        ]
        click.echo(table(rows, ["number", "action", "outcome", "started_at", "ms", "error"]))


@jobs.command("retry")
@click.argument("delivery_id", type=int)
@fail_on_service_errors
def jobs_retry(delivery_id: int) -> None:
    """Start a failed, deferred or cancelled delivery again."""
    from publisher.services.deliveries import retry_delivery

    with unit_of_work() as (session, _):
        retry_delivery(session, delivery_id, actor=ACTOR)
    click.echo(f"delivery {delivery_id} queued")


@jobs.command("cancel")
@click.argument("delivery_id", type=int)
@click.option("--reason", default=None)
@fail_on_service_errors
def jobs_cancel(delivery_id: int, reason: str | None) -> None:
    """Stop working on a delivery."""
    from publisher.services.channels import cancel_delivery

    with unit_of_work() as (session, _):
        cancel_delivery(session, delivery_id, actor=ACTOR, reason=reason)
    click.echo(f"delivery {delivery_id} cancelled")


# --- channels ----------------------------------------------------------------------------------


@main.group()
def channels() -> None:
    """Channel status, pause and resume, credentials."""


@channels.command("list")
def channels_list() -> None:
    """Each channel: enabled (or why not), paused, needs re-authorisation, deliveries."""
    from publisher.db import get_database
    from publisher.services.channels import channel_statuses, warm_pool
    from publisher.shared import shared_store

    settings = get_settings()
    pool = ChannelPool(settings, shared_store(settings, get_database(settings)))
    health = warm_pool(pool)
    with unit_of_work() as (session, _):
        statuses = channel_statuses(session, pool, health)
    rows = []
    for s in statuses:
        status = "enabled" if s["enabled"] else "disabled"
        if s["paused"]:
            status = "paused"
        if s["needs_reauth"]:
            status = "needs re-authorisation"
        note = s["disabled_reason"] or s["paused_reason"] or s["reauth_reason"]
        counts = " ".join(f"{k}={v}" for k, v in sorted(s["deliveries"].items()))
        rows.append({"kind": s["kind"], "status": status, "deliveries": counts, "note": note})
    click.echo(table(rows, ["kind", "status", "deliveries", "note"]))


@channels.command("pause")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--reason", default=None)
@fail_on_service_errors
def channels_pause(kind: str, reason: str | None) -> None:
    """Stop sending to a channel; its deliveries wait."""
    from publisher.services.channels import pause_channel

    with unit_of_work() as (session, _):
        pause_channel(session, kind, reason, actor=ACTOR)
    click.echo(f"{kind} paused")


@channels.command("resume")
@click.argument("kind", type=click.Choice(KINDS))
@fail_on_service_errors
def channels_resume(kind: str) -> None:
    """Send to a channel again."""
    from publisher.services.channels import resume_channel

    with unit_of_work() as (session, _):
        resume_channel(session, kind, actor=ACTOR)
    click.echo(f"{kind} resumed")


@channels.command("set-token")
@click.argument("kind", type=click.Choice(KINDS))
@fail_on_service_errors
def channels_set_token(kind: str) -> None:
    """Give a channel a new access token, read from stdin or a hidden prompt (never argv)."""
    from publisher.db import get_database
    from publisher.services.channels import credentials_renewed, store_credentials
    from publisher.shared import shared_store

    if sys.stdin.isatty():
        value = click.prompt(f"{kind} access token", hide_input=True)
    else:
        value = sys.stdin.readline()
    settings = get_settings()
    store_credentials(shared_store(settings, get_database(settings)), kind, value)
    with unit_of_work() as (session, _):
        woken = credentials_renewed(session, kind, actor=ACTOR)
    click.echo(f"{kind}: token stored; {woken} waiting deliveries are due now")


# --- scope: domains and departments -------------------------------------------------------------


@main.group()
def domains() -> None:
    """Disclosure domains."""


@domains.command("list")
def domains_list() -> None:
    from publisher.services.catalog_admin import domain_view, list_domains

    with unit_of_work() as (session, _):
        rows = [domain_view(d) for d in list_domains(session)]
    click.echo(table(rows, ["code", "name", "catecode", "active", "departments"]))


@domains.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--catecode", required=True)
@click.option("--department", "departments", multiple=True, help="repeatable")
@fail_on_service_errors
def domains_add(code: str, name: str, catecode: str, departments: tuple[str, ...]) -> None:
    """Add a disclosure domain with its responsible departments."""
    from publisher.services.catalog_admin import add_domain

    with unit_of_work() as (session, _):
        add_domain(
            session,
            code=code,
            name=name,
            catecode=catecode,
            departments=list(departments),
            actor=ACTOR,
        )
    click.echo(f"domain {code} added")


@main.group()
def departments() -> None:
    """Departments."""


@departments.command("list")
def departments_list() -> None:
    from publisher.services.catalog_admin import department_view, list_departments

    with unit_of_work() as (session, _):
        rows = [department_view(d) for d in list_departments(session)]
    click.echo(table(rows, ["code", "name", "active"]))


@departments.command("add")
@click.argument("code")
@click.option("--name", required=True)
@fail_on_service_errors
def departments_add(code: str, name: str) -> None:
    """Add a department (link it to domains with `domains add` or the API)."""
    from publisher.services.catalog_admin import add_department

    with unit_of_work() as (session, _):
        add_department(session, code=code, name=name, actor=ACTOR)
    click.echo(f"department {code} added")


@channels.command("retry-failed")
@click.argument("kind", type=click.Choice(KINDS))
@fail_on_service_errors
def channels_retry_failed(kind: str) -> None:
    """Start every failed delivery of a channel again (each with a new failure budget)."""
    from publisher.services.channels import retry_failed

    with unit_of_work() as (session, _):
        count = retry_failed(session, kind, actor=ACTOR)
    click.echo(f"{count} failed {kind} deliveries queued again")


# --- freeze ------------------------------------------------------------------------------------


@main.group()
def freeze() -> None:
    """An organisation-wide publishing freeze (urgent items and withdrawals still go)."""


@freeze.command("status")
def freeze_status() -> None:
    """Whether a freeze is in force, since when and why."""
    from publisher.services.channels import freeze_view
    from publisher.services.deliveries import active_freeze

    with unit_of_work() as (session, _):
        view = freeze_view(active_freeze(session))
    if not view["active"]:
        click.echo("no freeze in force")
        return
    show_pairs([(key, view[key]) for key in ("id", "reason", "started_at", "started_by")])


@freeze.command("start")
@click.option("--reason", required=True, help="why publishing is frozen")
@fail_on_service_errors
def freeze_start(reason: str) -> None:
    """Hold publishing and edits of every item not marked urgent."""
    from publisher.services.channels import start_freeze

    with unit_of_work() as (session, _):
        started = start_freeze(session, reason, actor=ACTOR)
        click.echo(f"freeze {started.id} in force: {started.reason}")


@freeze.command("lift")
@fail_on_service_errors
def freeze_lift() -> None:
    """End the freeze; what it held goes out now."""
    from publisher.services.channels import lift_freeze

    with unit_of_work() as (session, _):
        _, woken = lift_freeze(session, actor=ACTOR)
    click.echo(f"freeze lifted; {woken} deliveries released")


main.add_command(drift)
main.add_command(bench)

if __name__ == "__main__":
    main(prog_name="publisher")
