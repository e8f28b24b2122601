"""`publisher token`: API bearer tokens, each belonging to a user."""

from __future__ import annotations

import click

from publisher.audit import audit
from publisher.auth import DEFAULT_TOKEN_DAYS, create_token
from publisher.cli.common import ROW_ID, caller, fail_on_service_errors, table, unit_of_work
from publisher.errors import FieldProblem, InvalidInput
from publisher.i18n import t
from publisher.i18n.deliveries import beijing
from publisher.models import Role
from publisher.services.users import (
    create_user_token,
    list_tokens,
    revoke_user_token,
    token_view,
)


@click.group()
def token() -> None:
    """API bearer tokens: create, list, revoke."""


@token.command("create")
@click.option("--user", "user_name", default=None, help="the user the token belongs to")
@click.option(
    "--role",
    default=None,
    type=click.Choice([r.value for r in Role]),
    help="instead of --user: a token of a new user made for it",
)
@click.option("--department", default=None, help="with --role editor or reviewer")
@click.option("--label", default=None, help="the token's name")
@click.option(
    "--expires-days",
    type=click.IntRange(min=1),
    default=DEFAULT_TOKEN_DAYS,
    show_default=True,
)
@fail_on_service_errors
def token_create(
    user_name: str | None,
    role: str | None,
    department: str | None,
    label: str | None,
    expires_days: int,
) -> None:
    """Create a token and print it (only this once: only its hash is stored)."""
    if (user_name is None) == (role is None):
        raise InvalidInput([FieldProblem("user", "required", "give either --user NAME or --role")])
    who = caller()
    if role is not None or user_name != who.name:
        who.require()  # a token of someone else, or of a new user: admins only
    with unit_of_work() as (session, _):
        if user_name is not None:
            plaintext = create_user_token(
                session, user_name, label=label, expires_days=expires_days, actor=who.actor
            )
        else:
            assert role is not None
            plaintext = create_token(session, role, department, label, expires_days=expires_days)
            audit(
                session,
                who.actor,
                "token.create",
                f"role:{role}",
                department=department,
                label=label,
                expires_days=expires_days,
            )
    click.echo(plaintext)


@token.command("list")
@click.option("--user", "user_name", default=None, help="only this user's tokens")
@click.option("--all", "show_all", is_flag=True, help="revoked and expired tokens too")
@fail_on_service_errors
def token_list(user_name: str | None, show_all: bool) -> None:
    """Tokens, newest first (never the token itself: its first characters only). Admins
    and the operator of the machine see every user's; others their own."""
    who = caller()
    with unit_of_work() as (session, _):
        owner = None if who.role == Role.ADMIN else who.user_id
        rows = [
            token_view(t)
            for t in list_tokens(session, user_id=owner, include_inactive=show_all)
            if user_name is None or t.user.name == user_name
        ]
    for row in rows:
        row["last_used"] = beijing(row["last_used_at"])
        row["expires"] = beijing(row["expires_at"])
    columns = ["id", "user", "role", "label", "prefix", "expires", "last_used", "active"]
    click.echo(table(rows, columns))


@token.command("revoke")
@click.argument("token_id", type=ROW_ID)
@fail_on_service_errors
def token_revoke(token_id: int) -> None:
    """Revoke a token (admins: any; others: their own)."""
    who = caller()
    owner = None if who.role == Role.ADMIN else who.user_id
    with unit_of_work() as (session, _):
        revoke_user_token(session, token_id, owner_id=owner, actor=who.actor)
    click.echo(t("cli.token.revoked", id=token_id))
