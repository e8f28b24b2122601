"""`publisher items`: write, publish and retract items, and follow their deliveries."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from channels.registry import KINDS
from publisher.cli.common import (
    ROW_ID,
    F,
    acting,
    fail_on_service_errors,
    reason_text,
    show_pairs,
    table,
    unit_of_work,
    warm_channel_pool,
)
from publisher.config import get_settings
from publisher.models import Role
from publisher.services import review
from publisher.services.channel_controls import disabled_map
from publisher.services.findings import findings_view, override_findings
from publisher.services.items import (
    ItemFields,
    create_item,
    get_item,
    latest_revision,
    lock_item,
    retract_item,
)
from publisher.services.masking import mask_item
from publisher.services.publishing import edit_checked, publish_checked
from publisher.services.queries import Page, item_view, list_items

SETTLED = {"live", "withdrawn", "failed", "cancelled"}
# Who reads items: editors and reviewers (their departments'), supervisors (every one).
ITEM_READERS = (Role.EDITOR, Role.REVIEWER, Role.SUPERVISOR)


@click.group()
def items() -> None:
    """Write, publish and retract items."""


@items.command("list")
@click.option(
    "--status",
    type=click.Choice(["draft", "submitted", "approved", "published", "retracted"]),
    default=None,
)
@click.option("--domain", default=None)
@click.option("--department", default=None)
@click.option("--limit", type=int, default=50)
@fail_on_service_errors
def items_list(status: str | None, domain: str | None, department: str | None, limit: int) -> None:
    """Items, newest first (with --as an editor or reviewer: their departments')."""
    who = acting(*ITEM_READERS)
    with unit_of_work() as (session, _):
        found = list_items(
            session,
            Page(limit=limit),
            status=status,
            domain=domain,
            department=department,
            scope=who.scope,
        )
    columns = ["id", "status", "index_no", "domain", "department", "title"]
    click.echo(table(found["results"], columns))
    click.echo(f"({len(found['results'])} of {found['total']})")


@items.command("show")
@click.argument("item_id", type=ROW_ID)
@fail_on_service_errors
def items_show(item_id: int) -> None:
    """An item, its latest revision and its deliveries."""
    who = acting(*ITEM_READERS)
    with unit_of_work() as (session, _):
        view = item_view(session, item_id, scope=who.scope)
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
            ("review", review_line(view)),
            ("sent back", view.get("sent_back_comment")),
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


def fields_from_options(options: dict[str, Any]) -> ItemFields:
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
    who = acting(Role.EDITOR)
    fields = fields_from_options(options)
    if fields.department:
        who.require_department(fields.department)
    settings = get_settings()
    disabled = disabled_map(warm_channel_pool(settings))
    with unit_of_work() as (session, _):
        item = create_item(session, settings, fields, actor=who.actor, disabled=disabled, who=who)
        item_id = item.id
    click.echo(f"created item {item_id}")


@items.command("edit")
@click.argument("item_id", type=ROW_ID)
@item_options
@fail_on_service_errors
def items_edit(item_id: int, **options: Any) -> None:
    """Change fields of an item: a new revision, which voids its approvals (a published item's
    channels follow once it is approved and published again). Reviewers: --urgent, --push,
    --channel only."""
    who = acting(Role.EDITOR, Role.REVIEWER)
    fields = fields_from_options(options)
    if fields.department:
        who.require_department(fields.department)
    settings = get_settings()
    pool = warm_channel_pool(settings)
    with unit_of_work() as (session, _):
        who.require_department(get_item(session, item_id).department_code)
        rev = edit_checked(session, settings, item_id, fields, pool, actor=who.actor, who=who)
        number = None if rev is None else rev.number
    click.echo(f"item {item_id}: " + (f"revision {number}" if number else "nothing changed"))


@items.command("publish")
@click.argument("item_id", type=ROW_ID)
@click.option("--wait", is_flag=True, help="follow the deliveries until they settle")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="with --wait")
@fail_on_service_errors
def items_publish(item_id: int, wait: bool, timeout: float) -> None:
    """Preflight every channel, then publish (once every review stage approved it). With
    --wait, exit 1 if any channel failed."""
    who = acting(Role.EDITOR, Role.REVIEWER)
    settings = get_settings()
    pool = warm_channel_pool(settings)
    with unit_of_work() as (session, _):
        locked = lock_item(session, item_id)
        who.require_department(locked.item.department_code)
        item = publish_checked(session, settings, locked, pool, actor=who.actor, who=who)
        index_no = item.index_no
    click.echo(f"item {item_id} published as {index_no}")
    if wait:
        sys.exit(follow_deliveries(item_id, timeout))


@items.command("submit")
@click.argument("item_id", type=ROW_ID)
@fail_on_service_errors
def items_submit(item_id: int) -> None:
    """Send an item's latest revision to its domain's review stages."""
    who = acting(Role.EDITOR)
    with unit_of_work() as (session, _):
        review.submit_item(session, item_id, who)
        view = item_view(session, item_id)
    click.echo(f"item {item_id}: {view['status']}; " + review_line(view))


@items.command("approve")
@click.argument("item_id", type=ROW_ID)
@click.option("--comment", callback=reason_text, default=None)
@fail_on_service_errors
def items_approve(item_id: int, comment: str | None) -> None:
    """Approve the next review stage (as `publisher --as NAME`, a reviewer of the item's
    department who did not write it)."""
    who = acting(Role.REVIEWER)
    with unit_of_work() as (session, _):
        approval = review.approve_item(session, item_id, who, comment)
        stage = approval.stage_name
        view = item_view(session, item_id)
    click.echo(f"item {item_id}: {stage} approved; " + review_line(view))


@items.command("send-back")
@click.argument("item_id", type=ROW_ID)
@click.option(
    "--comment", callback=reason_text, required=True, help="why it goes back to its editor"
)
@fail_on_service_errors
def items_send_back(item_id: int, comment: str) -> None:
    """Return an item under review to its editor, with a comment."""
    who = acting(Role.REVIEWER)
    with unit_of_work() as (session, _):
        review.send_back_item(session, item_id, who, comment)
    click.echo(f"item {item_id} sent back to its editor")


def review_line(view: dict[str, Any]) -> str:
    """Where the item stands in review, in one line."""
    state = view.get("review") or {}
    missing = state.get("missing") or []
    line = "waiting for " + ", ".join(missing) if missing else "every review stage approved"
    if view.get("post_review_pending"):
        line += " (published urgently: review afterwards pending)"
    if state.get("held"):
        line += f" (channels show revision {state.get('shown_revision')} until published)"
    return line


def follow_deliveries(item_id: int, timeout: float, interval: float = 0.5) -> int:
    """Show the item's deliveries until all settle: 0 if none failed, 1 if any did, 3 on
    timeout. On a terminal the table is redrawn in place; otherwise printed on each change."""
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
@click.argument("item_id", type=ROW_ID)
@click.option("--reason", callback=reason_text, default=None)
@fail_on_service_errors
def items_retract(item_id: int, reason: str | None) -> None:
    """Withdraw an item from every channel."""
    who = acting(Role.EDITOR)
    with unit_of_work() as (session, _):
        who.require_department(get_item(session, item_id).department_code)
        retract_item(session, item_id, actor=who.actor, reason=reason)
    click.echo(f"item {item_id} retracted")


# --- pre-publish checks ------------------------------------------------------------------------

FINDING_COLUMNS = ["kind", "field", "start", "end", "text_masked", "rule", "overridden"]


@items.command("findings")
@click.argument("item_id", type=ROW_ID)
@fail_on_service_errors
def items_findings(item_id: int) -> None:
    """What the pre-publish checks find in the latest revision (personal data masked)."""
    who = acting(*ITEM_READERS)
    with unit_of_work() as (session, _):
        item = get_item(session, item_id)
        who.require_department(item.department_code)
        found = findings_view(session, item, latest_revision(session, item_id))
    click.echo(table(found, FINDING_COLUMNS))
    blocking = sum(1 for f in found if not f["overridden"])
    click.echo(f"({len(found)} findings, {blocking} blocking)")


@items.command("override-findings")
@click.argument("item_id", type=ROW_ID)
@click.option(
    "--reason", callback=reason_text, required=True, help="why these findings may be published"
)
@fail_on_service_errors
def items_override_findings(item_id: int, reason: str) -> None:
    """As a reviewer: let the latest revision's findings go out (bound to this text; any
    edit voids it; audited)."""
    who = acting(Role.REVIEWER)
    with unit_of_work() as (session, _):
        item = get_item(session, item_id)
        who.require_department(item.department_code)
        revision = latest_revision(session, item_id)
        row = override_findings(session, item, revision, reviewer=who.actor, reason=reason)
        overridden, number = list(row.findings), revision.number
    click.echo(table(overridden, FINDING_COLUMNS[:-1]))
    click.echo(f"item {item_id} revision {number}: {len(overridden)} findings overridden")


@items.command("mask")
@click.argument("item_id", type=ROW_ID)
@fail_on_service_errors
def items_mask(item_id: int) -> None:
    """A new revision with every ID, mobile and bank card number masked where it stands."""
    who = acting(Role.EDITOR)
    settings = get_settings()
    pool = warm_channel_pool(settings)
    with unit_of_work() as (session, _):
        item = get_item(session, item_id)
        who.require_department(item.department_code)
        revision, counts = mask_item(session, settings, item_id, pool, actor=who.actor)
        number, left = revision.number, findings_view(session, item, revision)
    masked = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    click.echo(f"item {item_id}: revision {number}, masked {masked}")
    if left:
        click.echo(table(left, FINDING_COLUMNS))
