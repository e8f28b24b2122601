"""`publisher freeze`: an organisation-wide publishing freeze."""

from __future__ import annotations

import click

from publisher.cli.common import (
    acting,
    fail_on_service_errors,
    reason_text,
    show_pairs,
    unit_of_work,
)
from publisher.i18n import t
from publisher.i18n.deliveries import beijing
from publisher.models import Role
from publisher.services.freeze import active_freeze, freeze_view, lift_freeze, start_freeze


@click.group()
def freeze() -> None:
    """An organisation-wide publishing freeze (urgent items and withdrawals still go)."""


@freeze.command("status")
def freeze_status() -> None:
    """Whether a freeze is in force, since when and why."""
    with unit_of_work() as (session, _):
        view = freeze_view(active_freeze(session))
    if not view["active"]:
        click.echo(t("cli.freeze.none"))
        return
    view["started_at"] = beijing(view["started_at"])
    keys = ("id", "reason", "started_at", "started_by")
    show_pairs([(t(f"cli.freeze.{key}"), view[key]) for key in keys])


@freeze.command("start")
@click.option("--reason", callback=reason_text, required=True, help="why publishing is frozen")
@fail_on_service_errors
def freeze_start(reason: str) -> None:
    """Hold publishing and edits of every item not marked urgent."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        started = start_freeze(session, reason, actor=who.actor)
        click.echo(t("cli.freeze.started", id=started.id, reason=started.reason))


@freeze.command("lift")
@fail_on_service_errors
def freeze_lift() -> None:
    """End the freeze; what it held goes out now."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        _, woken = lift_freeze(session, actor=who.actor)
    click.echo(t("cli.freeze.lifted", count=woken))
