"""`publisher channels`: channel status, pause and resume, credentials, retrying failures."""

from __future__ import annotations

import sys
from typing import Any

import click

from channels.registry import KINDS
from publisher.cli.common import (
    acting,
    channel_pool,
    fail_on_service_errors,
    reason_text,
    table,
    unit_of_work,
)
from publisher.config import get_settings
from publisher.db import get_database
from publisher.delivery.ops import retry_failed
from publisher.i18n import t
from publisher.i18n.deliveries import beijing, channel_name, state_name
from publisher.models import Role
from publisher.services.channel_controls import (
    channel_statuses,
    credentials_renewed,
    pause_channel,
    resume_channel,
    store_credentials,
    warm_pool,
)
from publisher.shared import shared_store


@click.group()
def channels() -> None:
    """Channel status, pause and resume, credentials."""


@channels.command("list")
def channels_list() -> None:
    """Each channel: enabled (or why not), paused, needs re-authorisation, deliveries, circuit
    breaker; then each daily budget's use and reset, and the materials held."""
    pool = channel_pool(get_settings())
    readings = warm_pool(pool)
    with unit_of_work() as (session, _):
        statuses = channel_statuses(session, pool, readings)
    rows = []
    for s in statuses:
        status = "enabled" if s["enabled"] else "disabled"
        if s["paused"]:
            status = "paused"
        if s["needs_reauth"]:
            status = "reauth"
        note = s["disabled_reason"] or s["paused_reason"] or s["reauth_reason"]
        counts = " ".join(f"{state_name(k)} {v}" for k, v in sorted(s["deliveries"].items()))
        rows.append(
            {
                "channel": f"{s['kind']} {channel_name(s['kind'])}",
                "status": t(f"cli.channels.{status}"),
                "breaker": breaker_line(s["breaker"]),
                "deliveries": counts,
                "note": note,
            }
        )
    click.echo(table(rows, ["channel", "status", "breaker", "deliveries", "note"]))
    for s in statuses:
        for line in budget_lines(s["kind"], s["budgets"], s["health"]):
            click.echo(line)


def breaker_line(breaker: dict[str, Any]) -> str:
    if breaker["state"] == "open":
        return t("cli.breaker.open", until=beijing(breaker["next_probe_at"]))
    if breaker["state"] == "half_open":
        owner = breaker["probe_owner"]
        return t("cli.breaker.probing", owner=owner) if owner else t("cli.breaker.probe_due")
    return t("cli.breaker.closed")


def budget_lines(kind: str, budgets: list[dict[str, Any]], health: dict[str, Any]) -> list[str]:
    """`kind`'s daily budgets (a spent one marked) and its materials, if it has them."""
    lines = []
    name = f"{kind} {channel_name(kind)}"
    if budgets:
        resets = beijing(budgets[0]["resets_at"])
        lines.append(t("cli.channels.budgets", channel=name, resets=resets))
        for b in budgets:
            spent = t("cli.channels.spent") if b["left"] == 0 else ""
            lines.append(f"  {b['endpoint']:<32} {b['used']}/{b['limit']}{spent}")
    materials = health.get("materials")
    if isinstance(materials, dict):
        held, cap = materials.get("held"), materials.get("cap")
        lines.append(t("cli.channels.materials", channel=name, held=held, cap=cap))
    return lines


@channels.command("pause")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--reason", callback=reason_text, default=None)
@fail_on_service_errors
def channels_pause(kind: str, reason: str | None) -> None:
    """Stop sending to a channel; its deliveries wait."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        pause_channel(session, kind, reason, actor=who.actor)
    click.echo(t("cli.channels.paused_now", channel=channel_name(kind)))


@channels.command("resume")
@click.argument("kind", type=click.Choice(KINDS))
@fail_on_service_errors
def channels_resume(kind: str) -> None:
    """Send to a channel again."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        resume_channel(session, kind, actor=who.actor)
    click.echo(t("cli.channels.resumed", channel=channel_name(kind)))


@channels.command("set-token")
@click.argument("kind", type=click.Choice(KINDS))
@fail_on_service_errors
def channels_set_token(kind: str) -> None:
    """Give a channel a new access token, read from stdin or a hidden prompt (never argv)."""
    who = acting(Role.OPERATOR)
    if sys.stdin.isatty():
        value = click.prompt(
            t("cli.channels.token_prompt", channel=channel_name(kind)), hide_input=True
        )
    else:
        value = sys.stdin.readline()
    settings = get_settings()
    store_credentials(shared_store(settings, get_database(settings)), kind, value)
    with unit_of_work() as (session, _):
        woken = credentials_renewed(session, kind, actor=who.actor)
    click.echo(t("cli.channels.token_stored", channel=channel_name(kind), count=woken))


@channels.command("retry-failed")
@click.argument("kind", type=click.Choice(KINDS))
@fail_on_service_errors
def channels_retry_failed(kind: str) -> None:
    """Start every failed delivery of a channel again (each with a new failure budget)."""
    who = acting(Role.OPERATOR)
    with unit_of_work() as (session, _):
        count = retry_failed(session, kind, actor=who.actor)
    click.echo(t("cli.channels.retried", channel=channel_name(kind), count=count))
