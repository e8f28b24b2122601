"""`publisher items`: write, publish and retract items, and follow their deliveries."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from channels.registry import KINDS
from publisher.cli.common import (
    ROW_ID,
    F,
    ScopeNames,
    acting,
    fail_on_service_errors,
    reason_text,
    show_pairs,
    table,
    unit_of_work,
    warm_channel_pool,
)
from publisher.cli.follow import delivery_rows, follow_deliveries
from publisher.config import get_settings
from publisher.i18n import CATALOGUE, t
from publisher.i18n.deliveries import beijing
from publisher.i18n.refusals import item_status_name
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
        names = ScopeNames(session)
    rows = [
        {
            **row,
            "status": f"{row['status']} {item_status_name(row['status'])}",
            "domain": names.domain(row["domain"]),
            "department": names.department(row["department"]),
        }
        for row in found["results"]
    ]
    columns = ["id", "status", "index_no", "domain", "department", "title"]
    click.echo(table(rows, columns, clipped=["title"]))
    click.echo(t("cli.count", total=found["total"], shown=len(rows)))


@items.command("show")
@click.argument("item_id", type=ROW_ID)
@fail_on_service_errors
def items_show(item_id: int) -> None:
    """An item, its latest revision and its deliveries."""
    who = acting(*ITEM_READERS)
    with unit_of_work() as (session, _):
        view = item_view(session, item_id, scope=who.scope)
        names = ScopeNames(session)
    print_item(view, names)


def print_item(view: dict[str, Any], names: ScopeNames) -> None:
    rev = view["revision"] or {}
    pairs: list[tuple[str, Any]] = [
        ("id", view["id"]),
        ("status", f"{view['status']} {item_status_name(view['status'])}"),
        ("title", rev.get("title")),
        *_given(
            ("short_title", rev.get("short_title")),
            ("short_title_wechat", (rev.get("short_titles") or {}).get("wechat")),
            ("short_title_weibo", (rev.get("short_titles") or {}).get("weibo")),
            ("wechat_digest", rev.get("wechat_digest")),
        ),
        ("index_no", view["index_no"]),
        ("domain", names.domain(view["domain"])),
        ("department", names.department(view["department"])),
        ("formed_on", rev.get("formed_on")),
        ("doc_number", rev.get("doc_number")),
        ("revision", rev.get("number")),
        ("channels", ",".join(view["channels"]) or t("cli.items.every_channel")),
        ("review", review_line(view)),
        ("sent_back", view.get("sent_back_comment")),
        ("published_at", beijing(view.get("published_at"))),
        ("due_on", deadline_line(view)),
    ]
    show_pairs([(t(f"cli.item.{key}"), value) for key, value in pairs])
    if view["deliveries"]:
        click.echo()
        click.echo(delivery_table(view["deliveries"]))


def deadline_line(view: dict[str, Any]) -> str | None:
    """`2024-10-30 逾期公开（晚 3 个工作日）`, and a warning when a year's holidays were not
    confirmed; None for an item without a deadline."""
    if not view.get("due_on"):
        return None
    parts = [view["due_on"]]
    if view.get("timeliness"):
        parts.append(t(f"timeliness.{view['timeliness']}"))
    line = " ".join(parts)
    notes = []
    if view.get("days_late"):
        notes.append(t("timeliness.days_late", days=view["days_late"]))
    if view.get("calendar_confirmed") is False:
        notes.append(t("timeliness.unconfirmed"))
    return line + (f"（{'；'.join(notes)}）" if notes else "")


def _given(*pairs: tuple[str, Any]) -> list[tuple[str, Any]]:
    """The optional fields an item has (the others are not listed)."""
    return [(key, value) for key, value in pairs if value]


def delivery_table(deliveries: Sequence[dict[str, Any]]) -> str:
    """One row per channel: its state, the live URL in full, or why it waits."""
    return table(delivery_rows(deliveries), ["id", "channel", "state", "attempts", "url", "reason"])


def item_options(func: F) -> F:
    options = [
        click.option("--title"),
        click.option("--summary"),
        click.option("--short-title", help="WeChat's and Weibo's, unless they have their own"),
        click.option("--short-title-wechat", help='WeChat\'s own (≤ 32 characters; "" clears)'),
        click.option("--short-title-weibo", help='Weibo\'s own ("" clears)'),
        click.option(
            "--wechat-digest", help='≤ 128 characters; "" clears: the summary cut at a sentence end'
        ),
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
        short_titles=channel_short_titles(options),
        wechat_digest=options["wechat_digest"],
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


def channel_short_titles(options: dict[str, Any]) -> dict[str, str] | None:
    """The channels' own short titles given (None: none given, unchanged in an edit)."""
    given = {
        kind: options[f"short_title_{kind}"]
        for kind in ("wechat", "weibo")
        if options[f"short_title_{kind}"] is not None
    }
    return given or None


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
    click.echo(t("cli.items.created", id=item_id))


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
    if number:
        click.echo(t("cli.items.revised", id=item_id, number=number))
    else:
        click.echo(t("cli.items.unchanged", id=item_id))


@items.command("publish")
@click.argument("item_id", type=ROW_ID)
@click.option(
    "--wait",
    is_flag=True,
    help="follow each channel until it is live or waits with a reason (one line per channel)",
)
@click.option("--timeout", type=float, default=600.0, show_default=True, help="with --wait")
@fail_on_service_errors
def items_publish(item_id: int, wait: bool, timeout: float) -> None:
    """Preflight every channel, then publish (once every review stage approved it). With
    --wait, follow each channel until it is live or waits with a reason: exit 0, or 1 if
    any channel failed, 3 on timeout."""
    who = acting(Role.EDITOR, Role.REVIEWER)
    settings = get_settings()
    pool = warm_channel_pool(settings)
    with unit_of_work() as (session, _):
        locked = lock_item(session, item_id)
        who.require_department(locked.item.department_code)
        item = publish_checked(session, settings, locked, pool, actor=who.actor, who=who)
        index_no = item.index_no
    click.echo(t("cli.items.published", id=item_id, index_no=index_no))
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
    status = item_status_name(view["status"])
    click.echo(t("cli.items.submitted", id=item_id, status=status, review=review_line(view)))


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
    click.echo(t("cli.items.approved", id=item_id, stage=stage, review=review_line(view)))


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
    click.echo(t("cli.items.sent_back", id=item_id))


def review_line(view: dict[str, Any]) -> str:
    """Where the item stands in review, in one line."""
    state = view.get("review") or {}
    missing = "、".join(state.get("missing") or [])
    line = t("cli.review.waiting", stages=missing) if missing else t("cli.review.done")
    if view.get("post_review_pending"):
        line += t("cli.review.urgent")
    if state.get("held"):
        line += t("cli.review.held", revision=state.get("shown_revision"))
    return line


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
    click.echo(t("cli.items.retracted", id=item_id))


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
    click.echo(table(finding_rows(found), FINDING_COLUMNS))
    blocking = sum(1 for f in found if not f["overridden"])
    click.echo(t("cli.findings.count", total=len(found), blocking=blocking))


def finding_rows(found: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings with their kind and field named in Chinese beside the codes."""
    rows = []
    for finding in found:
        kind, name = finding["kind"], finding["field"]
        label = CATALOGUE.get(f"field.{name}", "")
        rows.append(
            {**finding, "kind": f"{kind} {t(f'finding.{kind}')}", "field": f"{name} {label}"}
        )
    return rows


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
    click.echo(table(finding_rows(overridden), FINDING_COLUMNS[:-1]))
    count = len(overridden)
    click.echo(t("cli.findings.overridden", id=item_id, number=number, count=count))


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
    masked = "、".join(
        t("cli.findings.masked_kind", count=n, kind=t(f"finding.{kind}"))
        for kind, n in sorted(counts.items())
    )
    click.echo(t("cli.findings.masked", id=item_id, number=number, masked=masked))
    if left:
        click.echo(table(finding_rows(left), FINDING_COLUMNS))
