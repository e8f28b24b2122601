"""`publisher jobs`: deliveries, one job per item and channel."""

from __future__ import annotations

from typing import Any

import click

from channels.registry import KINDS
from publisher.cli.common import (
    ROW_ID,
    BadValue,
    acting,
    fail_on_service_errors,
    reason_text,
    show_pairs,
    table,
    unit_of_work,
    warm_channel_pool,
)
from publisher.cli.follow import delivery_rows
from publisher.config import get_settings
from publisher.db import get_database
from publisher.delivery.adopt import ADOPTABLE, adopt_post, mark_posted
from publisher.delivery.ops import cancel_delivery, retry_delivery
from publisher.i18n import CATALOGUE, t
from publisher.i18n.deliveries import beijing, channel_name, error_text, state_name, waiting_reason
from publisher.models import DeliveryState, Role
from publisher.services.limits import REMOTE_ID_MAX, URL_MAX
from publisher.services.queries import Page, delivery_detail, list_deliveries

# Every role sees deliveries; editors and reviewers only their departments' (`scope`).
READERS = (Role.EDITOR, Role.REVIEWER, Role.OPERATOR, Role.SUPERVISOR)


@click.group()
def jobs() -> None:
    """Deliveries: one job per item and channel."""


@jobs.command("list")
@click.option("--state", type=click.Choice([s.value for s in DeliveryState]), default=None)
@click.option("--channel", type=click.Choice(KINDS), default=None)
@click.option("--item", type=ROW_ID, default=None)
@click.option("--limit", type=int, default=50)
@fail_on_service_errors
def jobs_list(state: str | None, channel: str | None, item: int | None, limit: int) -> None:
    """Deliveries, most recently changed first (with --as an editor: their departments')."""
    who = acting(*READERS)
    with unit_of_work() as (session, _):
        found = list_deliveries(
            session, Page(limit=limit), state=state, channel=channel, item=item, scope=who.scope
        )
    rows = [
        {**row, "item": row["item_id"], "next": _next(row)}
        for row in delivery_rows(found["results"])
    ]
    click.echo(table(rows, ["id", "item", "channel", "state", "attempts", "next", "reason"]))
    click.echo(t("cli.count", total=found["total"], shown=len(rows)))


def _next(delivery: dict[str, Any]) -> str | None:
    """When a delivery that still has work is tried next (Beijing time); none for one that
    is done."""
    if delivery["state"].split()[0] in ("live", "withdrawn", "cancelled", "failed"):
        return None
    return beijing(delivery["next_attempt_at"])


@jobs.command("show")
@click.argument("delivery_id", type=ROW_ID)
@fail_on_service_errors
def jobs_show(delivery_id: int) -> None:
    """A delivery and every attempt made for it."""
    who = acting(*READERS)
    with unit_of_work() as (session, _):
        delivery = delivery_detail(session, delivery_id, scope=who.scope)
    kind, state = delivery["channel"], delivery["state"]
    pairs = [
        ("id", delivery["id"]),
        ("item", delivery["item_id"]),
        ("channel", f"{kind} {channel_name(kind)}"),
        ("state", f"{state} {state_name(state)}"),
        ("remote_id", delivery["remote_id"]),
        ("url", delivery["url"]),
        ("next", _next(delivery)),
        ("reason", waiting_reason(delivery)),
        ("error", error_text(delivery["last_error"])),
    ]
    show_pairs([(t(f"cli.jobs.{key}"), value) for key, value in pairs])
    if delivery["state"] in ADOPTABLE:
        click.echo(t("cli.jobs.adopt_hint", id=delivery_id))
    if delivery["attempt_log"]:
        click.echo()
        rows = [attempt_row(a) for a in delivery["attempt_log"]]
        click.echo(table(rows, ["number", "action", "outcome", "started_at", "ms", "error"]))


def attempt_row(attempt: dict[str, Any]) -> dict[str, Any]:
    """An attempt: action and outcome in Chinese, its start in Beijing time, its error with
    the channel's own text."""
    action, outcome = attempt["action"], attempt["outcome"]
    return {
        **attempt,
        "action": f"{action} {CATALOGUE.get(f'action.{action}', '')}".rstrip(),
        "outcome": CATALOGUE.get(f"outcome.{outcome}", outcome),
        "started_at": beijing(attempt["started_at"]),
        "error": error_text(attempt["error"]),
        "ms": attempt["duration_ms"],
    }


@jobs.command("retry")
@click.argument("delivery_id", type=ROW_ID)
@fail_on_service_errors
def jobs_retry(delivery_id: int) -> None:
    """Start a failed, deferred or cancelled delivery again."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        retry_delivery(session, delivery_id, actor=who.actor)
    click.echo(t("cli.jobs.queued", id=delivery_id))


@jobs.command("cancel")
@click.argument("delivery_id", type=ROW_ID)
@click.option("--reason", callback=reason_text, default=None)
@fail_on_service_errors
def jobs_cancel(delivery_id: int, reason: str | None) -> None:
    """Stop working on a delivery."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        cancel_delivery(session, delivery_id, actor=who.actor, reason=reason)
    click.echo(t("cli.jobs.cancelled", id=delivery_id))


def remote_id_text(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A post's id as the API takes it: not blank, at most `REMOTE_ID_MAX` characters."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > REMOTE_ID_MAX:
        raise BadValue("length", t("cli.rule.one_to", limit=REMOTE_ID_MAX))
    return text


@jobs.command("adopt")
@click.argument("delivery_id", type=ROW_ID)
@click.argument("remote_id", callback=remote_id_text)
@fail_on_service_errors
def jobs_adopt(delivery_id: int, remote_id: str) -> None:
    """Take a post the channel shows under REMOTE_ID as an unknown or failed delivery's copy."""
    who = acting(Role.OPERATOR)
    settings = get_settings()
    pool = warm_channel_pool(settings)
    adopt_post(get_database(settings), settings, pool, delivery_id, remote_id, actor=who.actor)
    click.echo(t("cli.jobs.adopted", id=delivery_id, remote_id=remote_id))


@jobs.command("mark-posted")
@click.argument("delivery_id", type=ROW_ID)
@click.option("--reason", callback=reason_text, required=True, help="why (audited)")
@click.option("--remote-id", callback=remote_id_text, default=None, help="the post's id")
@click.option("--url", default=None, help="the post's address")
@fail_on_service_errors
def jobs_mark_posted(delivery_id: int, reason: str, remote_id: str | None, url: str | None) -> None:
    """Record an unknown or failed delivery live on your word, when the channel cannot be
    asked."""
    if not reason.strip():
        raise BadValue("required", t("cli.rule.not_blank"), param_hint="--reason")
    if url is not None and len(url) > URL_MAX:
        raise BadValue("max_length", t("cli.rule.at_most", limit=URL_MAX), param_hint="--url")
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        mark_posted(
            session, delivery_id, reason=reason, remote_id=remote_id, url=url, actor=who.actor
        )
    click.echo(t("cli.jobs.marked", id=delivery_id))
