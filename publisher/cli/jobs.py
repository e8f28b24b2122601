"""`publisher jobs`: deliveries, one job per item and channel."""

from __future__ import annotations

import click

from channels.registry import KINDS
from publisher.cli.common import (
    ROW_ID,
    acting,
    fail_on_service_errors,
    reason_text,
    show_pairs,
    table,
    unit_of_work,
)
from publisher.delivery.ops import cancel_delivery, retry_delivery
from publisher.models import DeliveryState, Role
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
    rows = [{**d, "item": d["item_id"], "next": d["next_attempt_at"]} for d in found["results"]]
    click.echo(table(rows, ["id", "item", "channel", "state", "attempts", "next", "explanation"]))
    click.echo(f"({len(rows)} of {found['total']})")


@jobs.command("show")
@click.argument("delivery_id", type=ROW_ID)
@fail_on_service_errors
def jobs_show(delivery_id: int) -> None:
    """A delivery and every attempt made for it."""
    who = acting(*READERS)
    with unit_of_work() as (session, _):
        delivery = delivery_detail(session, delivery_id, scope=who.scope)
    error = delivery["last_error"] or {}
    show_pairs(
        [
            ("id", delivery["id"]),
            ("item", delivery["item_id"]),
            ("channel", delivery["channel"]),
            ("state", delivery["state"]),
            ("remote id", delivery["remote_id"]),
            ("url", delivery["url"]),
            ("next attempt", delivery["next_attempt_at"]),
            ("error code", error.get("code")),
            ("error message", error.get("message")),
            ("explanation", delivery["explanation"]),
        ]
    )
    if delivery["attempt_log"]:
        click.echo()
        rows = [
            {**a, "error": (a["error"] or {}).get("message"), "ms": a["duration_ms"]}
            for a in delivery["attempt_log"]
        ]
        click.echo(table(rows, ["number", "action", "outcome", "started_at", "ms", "error"]))


@jobs.command("retry")
@click.argument("delivery_id", type=ROW_ID)
@fail_on_service_errors
def jobs_retry(delivery_id: int) -> None:
    """Start a failed, deferred or cancelled delivery again."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        retry_delivery(session, delivery_id, actor=who.actor)
    click.echo(f"delivery {delivery_id} queued")


@jobs.command("cancel")
@click.argument("delivery_id", type=ROW_ID)
@click.option("--reason", callback=reason_text, default=None)
@fail_on_service_errors
def jobs_cancel(delivery_id: int, reason: str | None) -> None:
    """Stop working on a delivery."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        cancel_delivery(session, delivery_id, actor=who.actor, reason=reason)
    click.echo(f"delivery {delivery_id} cancelled")
