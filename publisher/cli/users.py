"""`publisher user`: the people who sign in, their roles, departments and passwords."""

from __future__ import annotations

import sys

import click

from publisher.cli.common import acting, fail_on_service_errors, table, unit_of_work
from publisher.i18n import t
from publisher.i18n.deliveries import beijing
from publisher.i18n.refusals import role_name
from publisher.models import Role
from publisher.services.users import (
    create_user,
    disable_user,
    generate_password,
    list_users,
    set_password,
    user_view,
)

ROLES = [r.value for r in Role]


def password_from_stdin() -> str | None:
    """The password piped on stdin (its first line), or None on a terminal or an empty pipe:
    never a command-line argument, which other users of the machine can read."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    line = sys.stdin.readline().rstrip("\r\n")
    return line or None


@click.group()
def user() -> None:
    """Users: who signs in, with which role and departments."""


@user.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option(
    "--department",
    "departments",
    multiple=True,
    help="repeatable; required for editors and reviewers, refused for other roles",
)
@fail_on_service_errors
def user_create(name: str, role: str, departments: tuple[str, ...]) -> None:
    """Create a user. The password is read from stdin when piped; otherwise one is
    generated and printed, this once."""
    who = acting()
    password = password_from_stdin()
    generated = password is None
    if password is None:
        password = generate_password()
    with unit_of_work() as (session, _):
        made = create_user(
            session,
            name=name,
            role=role,
            departments=list(departments),
            password=password,
            actor=who.actor,
        )
        codes = [d.code for d in made.departments]
    where = t("cli.user.departments", departments=",".join(codes)) if codes else ""
    shown_role = f"{role} {role_name(role)}"
    click.echo(t("cli.user.created", name=name, role=shown_role, departments=where))
    if generated:
        click.echo(t("cli.user.password", password=password))


@user.command("list")
@fail_on_service_errors
def user_list() -> None:
    """Every user: role, departments, whether a password is set, disabled."""
    acting()
    with unit_of_work() as (session, _):
        rows = [user_view(u) for u in list_users(session)]
    for row in rows:
        row["role"] = f"{row['role']} {role_name(row['role'])}"
        row["password"] = row["password_set"]
        row["created_at"] = beijing(row["created_at"])
        row["disabled"] = beijing(row["disabled_at"])
    columns = ["id", "name", "role", "departments", "password", "created_at", "disabled"]
    click.echo(table(rows, columns))


@user.command("disable")
@click.argument("name")
@fail_on_service_errors
def user_disable(name: str) -> None:
    """Disable a user: their tokens and sign-in are refused from now on."""
    who = acting()
    with unit_of_work() as (session, _):
        disable_user(session, name, actor=who.actor)
    click.echo(t("cli.user.disabled", name=name))


@user.command("set-password")
@click.argument("name")
@fail_on_service_errors
def user_set_password(name: str) -> None:
    """Give a user a new password: read from stdin when piped, else generated and printed."""
    who = acting()
    password = password_from_stdin()
    generated = password is None
    if password is None:
        password = generate_password()
    with unit_of_work() as (session, _):
        set_password(session, name, password, actor=who.actor)
    click.echo(t("cli.user.password_set", name=name))
    if generated:
        click.echo(t("cli.user.password", password=password))
