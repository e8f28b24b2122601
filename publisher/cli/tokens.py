"""`publisher token`: API bearer tokens."""

from __future__ import annotations

import click

from publisher.audit import audit
from publisher.auth import create_token
from publisher.cli.common import ACTOR, fail_on_service_errors, unit_of_work


@click.group()
def token() -> None:
    """API bearer tokens."""


@token.command("create")
@click.option(
    "--role", required=True, type=click.Choice(["admin", "editor", "operator", "supervisor"])
)
@click.option("--department", default=None, help="limit an editor to one department")
@click.option("--label", default=None)
@fail_on_service_errors
def token_create(role: str, department: str | None, label: str | None) -> None:
    """Create a token and print it (only this once: only its hash is stored)."""
    with unit_of_work() as (session, _):
        plaintext = create_token(session, role, department, label)
        audit(session, ACTOR, "token.create", f"role:{role}", department=department, label=label)
    click.echo(plaintext)
