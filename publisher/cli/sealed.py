"""`publisher secrets`: the channel tokens the shared store keeps sealed (README, Secrets at rest).

A rotation: the new key in `PUBLISHER_SECRET_KEY`, the old one moved to
`PUBLISHER_SECRET_KEYS_OLD`, every process restarted, then `publisher secrets reseal`; after
it the old key can go. The same command seals tokens an older version stored in clear.
"""

from __future__ import annotations

import click

from publisher.audit import audit
from publisher.cli.common import acting, fail_on_service_errors, unit_of_work
from publisher.config import get_settings
from publisher.db import get_database
from publisher.i18n import t
from publisher.models import Role
from publisher.sealing import SecretKeyMissing
from publisher.shared import shared_store


@click.group("secrets")
def secrets_group() -> None:
    """Channel tokens sealed at rest."""


@secrets_group.command("reseal")
@fail_on_service_errors
def reseal() -> None:
    """Seal every stored token with PUBLISHER_SECRET_KEY now (after a key rotation, or over
    tokens stored in clear). Tokens no configured key opens are left, and named in the log."""
    who = acting(Role.ADMIN)
    settings = get_settings()
    store = shared_store(settings, get_database(settings))
    if not store.sealer.can_seal:
        raise SecretKeyMissing()
    count = store.reseal()
    with unit_of_work() as (session, _):
        audit(session, who.actor, "secrets.reseal", "shared_store", resealed=count)
    click.echo(t("cli.secrets.resealed", count=count))
