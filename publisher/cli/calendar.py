"""`publisher calendar`: the working-day calendar's overrides and confirmed years (admins;
`show` for supervisors too). Audited."""

from __future__ import annotations

from datetime import date, datetime

import click

from publisher.cli.common import acting, fail_on_service_errors, table, unit_of_work
from publisher.i18n import t
from publisher.models import Role
from publisher.services import workdays


@click.group()
def calendar() -> None:
    """The working days of the 20-working-day deadline: holidays and make-up days."""


@calendar.command("set")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option(
    "--workday/--holiday", "is_workday", required=True, help="a make-up working day, or a holiday"
)
@click.option("--note", default=None, help="e.g. 国庆节 or 国庆节调休")
@fail_on_service_errors
def calendar_set(day: datetime, is_workday: bool, note: str | None) -> None:
    """Record DAY (YYYY-MM-DD) as a working day or a holiday, replacing an earlier entry."""
    who = acting()
    the_day = date(day.year, day.month, day.day)
    with unit_of_work() as (session, _):
        workdays.set_override(session, the_day, is_workday=is_workday, note=note, actor=who.actor)
    kind = t("cli.calendar.workday") if is_workday else t("cli.calendar.holiday")
    click.echo(t("cli.calendar.set", day=the_day.isoformat(), kind=kind))


@calendar.command("confirm")
@click.argument("year", type=int)
@fail_on_service_errors
def calendar_confirm(year: int) -> None:
    """Mark YEAR's holidays and make-up days as all entered."""
    who = acting()
    with unit_of_work() as (session, _):
        workdays.confirm_year(session, year, actor=who.actor)
    click.echo(t("cli.calendar.confirmed", year=year))


@calendar.command("show")
@click.argument("year", type=int)
@fail_on_service_errors
def calendar_show(year: int) -> None:
    """YEAR's overrides, and whether its working days are known."""
    acting(Role.SUPERVISOR)
    with unit_of_work() as (session, _):
        view = workdays.year_view(session, year)
    if view.known_to_library:
        click.echo(t("cli.calendar.known", year=year))
    elif view.confirmed:
        click.echo(t("cli.calendar.by_overrides", year=year))
    else:
        click.echo(t("cli.calendar.unconfirmed", year=year))
    rows = [
        {
            "day": row["day"],
            "kind": t("cli.calendar.workday") if row["is_workday"] else t("cli.calendar.holiday"),
            "note": row["note"],
            "created_by": row["created_by"],
        }
        for row in view.overrides
    ]
    if rows:
        click.echo(table(rows, ["day", "kind", "note", "created_by"]))
