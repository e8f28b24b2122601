"""`publisher drift`: what reconciliation found between the store and the channels."""

from __future__ import annotations

import click

from channels.registry import KINDS
from publisher.cli.common import (
    ROW_ID,
    acting,
    fail_on_service_errors,
    table,
    unit_of_work,
    warm_channel_pool,
)
from publisher.config import get_settings
from publisher.db import get_database
from publisher.delivery.reconcile import check_now, repair_drift
from publisher.i18n import CATALOGUE, t
from publisher.i18n.deliveries import beijing, channel_name
from publisher.models import Role
from publisher.services.queries import Page, list_drift


@click.group()
def drift() -> None:
    """Drift between the store and the channels: list, check now, repair."""


@drift.command("list")
@click.option("--all", "show_all", is_flag=True, help="resolved drift too")
@click.option("--channel", type=click.Choice(KINDS), default=None)
@click.option("--item", type=ROW_ID, default=None)
@click.option("--limit", type=int, default=50)
@fail_on_service_errors
def drift_list(show_all: bool, channel: str | None, item: int | None, limit: int) -> None:
    """Open drift (with --all, resolved too), newest first (with --as an editor: their
    departments' items only)."""
    who = acting(Role.EDITOR, Role.REVIEWER, Role.OPERATOR, Role.SUPERVISOR)
    with unit_of_work() as (session, _):
        found = list_drift(
            session,
            Page(limit=limit),
            open_only=not show_all,
            channel=channel,
            item=item,
            scope=who.scope,
        )
    rows = [
        {
            **d,
            "delivery": d["delivery_id"],
            "item": d["item_id"],
            "channel": f"{d['channel']} {channel_name(d['channel'])}",
            "kind": _named("drift", d["kind"]),
            "resolution": _named("drift", d["resolution"]),
            "detected": beijing(d["detected_at"]),
            "seen": d["times_seen"],
            "resolved": beijing(d["resolved_at"]),
            "what": d["details"].get("what"),
        }
        for d in found["results"]
    ]
    columns = ["id", "item", "delivery", "channel", "kind", "resolution", "seen", "detected"]
    if show_all:
        columns.append("resolved")
    click.echo(table(rows, [*columns, "what"]))
    click.echo(t("cli.count", total=found["total"], shown=len(rows)))


def _named(area: str, code: str) -> str:
    """`code` with its Chinese name beside it, where the catalogue has one."""
    name = CATALOGUE.get(f"{area}.{code}")
    return f"{code} {name}" if name else code


@drift.command("check")
@click.option("--channel", type=click.Choice(KINDS), default=None, help="default: every one")
@click.option("--item", type=ROW_ID, default=None, help="only this item's deliveries")
@click.option(
    "--policy",
    type=click.Choice(["repair", "report"]),
    default=None,
    help="default: PUBLISHER_RECONCILE_POLICY (repair)",
)
@fail_on_service_errors
def drift_check(channel: str | None, item: int | None, policy: str | None) -> None:
    """Look the channels' live and withdrawn deliveries up now and record what differs."""
    who = acting(Role.OPERATOR)
    settings = get_settings()
    pool = warm_channel_pool(settings)
    reports = check_now(
        get_database(settings),
        settings,
        pool,
        channel=channel,
        item_id=item,
        policy=policy,
        actor=who.actor,
    )
    rows = [
        {
            "channel": f"{r.channel} {channel_name(r.channel)}",
            "policy": _named("drift", r.policy),
            "checked": r.checked,
            "in_line": r.in_line,
            "drift": len(r.drift),
            "repaired": r.repaired,
            "closed": r.resolved,
            "errors": r.errors,
            "unchecked": r.unchecked,
            "note": r.skipped or r.stopped or (r.error_samples[0] if r.error_samples else None),
        }
        for r in reports
    ]
    columns = ["channel", "policy", "checked", "in_line", "drift", "repaired", "closed"]
    click.echo(table(rows, [*columns, "errors", "unchecked", "note"]))
    for r in reports:
        for found in r.drift:
            again = t("cli.drift.again") if found.seen_before else ""
            line = t(
                "cli.drift.found",
                id=found.drift_id,
                item=found.item_id,
                channel=channel_name(r.channel),
                kind=CATALOGUE.get(f"drift.{found.kind}", found.kind),
                action=CATALOGUE.get(f"drift.{found.action}", found.action),
                again=again,
            )
            click.echo(line)


@drift.command("repair")
@click.argument("drift_id", type=ROW_ID)
@fail_on_service_errors
def drift_repair(drift_id: int) -> None:
    """Repair one open drift now (e.g. one recorded under the policy "report")."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        found = repair_drift(session, drift_id, actor=who.actor)
        delivery_id = found.delivery_id
    click.echo(t("cli.drift.repair_queued", id=drift_id, delivery=delivery_id))
