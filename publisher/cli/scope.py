"""`publisher domains` and `publisher departments`: the disclosure scope."""

from __future__ import annotations

import click

from publisher.cli.common import acting, fail_on_service_errors, table, unit_of_work
from publisher.services.scope import (
    add_department,
    add_domain,
    department_view,
    domain_view,
    list_departments,
    list_domains,
)


@click.group()
def domains() -> None:
    """Disclosure domains."""


@domains.command("list")
def domains_list() -> None:
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
    """Add a disclosure domain with its responsible departments (admins)."""
    who = acting()
    with unit_of_work() as (session, _):
        add_domain(
            session,
            code=code,
            name=name,
            catecode=catecode,
            departments=list(departments),
            actor=who.actor,
        )
    click.echo(f"domain {code} added")


@click.group()
def departments() -> None:
    """Departments."""


@departments.command("list")
def departments_list() -> None:
    with unit_of_work() as (session, _):
        rows = [department_view(d) for d in list_departments(session)]
    click.echo(table(rows, ["code", "name", "active"]))


@departments.command("add")
@click.argument("code")
@click.option("--name", required=True)
@fail_on_service_errors
def departments_add(code: str, name: str) -> None:
    """Add a department (admins; link it to domains with `domains add` or the API)."""
    who = acting()
    with unit_of_work() as (session, _):
        add_department(session, code=code, name=name, actor=who.actor)
    click.echo(f"department {code} added")
