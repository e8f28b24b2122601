"""`publisher domains` and `publisher departments`: the disclosure scope."""

from __future__ import annotations

import click

from publisher.cli.common import ScopeNames, acting, fail_on_service_errors, table, unit_of_work
from publisher.i18n import t
from publisher.services.scope import (
    REQUIRABLE_FIELDS,
    DomainChanges,
    add_department,
    add_domain,
    department_view,
    domain_view,
    list_departments,
    list_domains,
    update_domain,
)


@click.group()
def domains() -> None:
    """Disclosure domains."""


@domains.command("list")
def domains_list() -> None:
    with unit_of_work() as (session, _):
        rows = [domain_view(d) for d in list_domains(session)]
        names = ScopeNames(session)
    for row in rows:
        row["departments"] = ", ".join(names.department(c) or c for c in row["departments"])
    columns = ["code", "name", "catecode", "active", "departments", "review_stages"]
    click.echo(table(rows, [*columns, "required_metadata"]))


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
    click.echo(t("cli.scope.domain_added", code=code, name=name))


@domains.command("update")
@click.argument("code")
@click.option("--name", default=None)
@click.option("--catecode", default=None)
@click.option("--department", "departments", multiple=True, help="repeatable; replaces the list")
@click.option("--active/--inactive", default=None)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    help="a review stage, in order (repeatable, at most 3); replaces the stages",
)
@click.option("--no-review", is_flag=True, help="no review stages: items publish directly")
@click.option(
    "--require",
    "required",
    multiple=True,
    type=click.Choice(REQUIRABLE_FIELDS),
    help="an item field required before publishing (repeatable); replaces the list",
)
@click.option("--require-nothing", is_flag=True, help="no required fields")
@fail_on_service_errors
def domains_update(
    code: str,
    name: str | None,
    catecode: str | None,
    departments: tuple[str, ...],
    active: bool | None,
    stages: tuple[str, ...],
    no_review: bool,
    required: tuple[str, ...],
    require_nothing: bool,
) -> None:
    """Change a domain (admins): its name, catecode, departments, review stages, required
    fields. At run time: the next submit, approval and publish use the new settings."""
    if (stages and no_review) or (required and require_nothing):
        raise click.UsageError(t("cli.both_or_neither"))
    who = acting()
    changes = DomainChanges(
        name=name,
        catecode=catecode,
        departments=list(departments) or None,
        active=active,
        review_stages=[] if no_review else (list(stages) or None),
        required_metadata=[] if require_nothing else (list(required) or None),
    )
    with unit_of_work() as (session, _):
        view = domain_view(update_domain(session, code, changes, actor=who.actor))
    stages_shown = "、".join(view["review_stages"]) or t("cli.scope.no_review")
    click.echo(t("cli.scope.domain_updated", code=code, stages=stages_shown))


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
    click.echo(t("cli.scope.department_added", code=code, name=name))
