"""The `publisher` command: run the processes, and operate the store directly.

Here: `main` and the explicit list of its command groups, one module each; `common` holds
what they share. Groups import `common` and services, never each other or this package;
only `run` may import `workers` (the composition root).

Item, job, channel and scope commands use the same services as the API, on the database the
settings name, in one transaction per command, audited under the OS user (`cli:root`), or
`cli:root as NAME` with `publisher --as NAME`, which also takes that user's role and
departments. What they print is Chinese, from the message catalogue (`publisher.i18n`). Bad
input (a service's problems, or click's usage errors) exits with status 2 and one line per
problem naming the field and the rule; a refusal exits with status 1.
"""

from __future__ import annotations

import socket
import sys

import click
from pydantic import ValidationError

from publisher.audit import client_address_as
from publisher.cli import (
    audit,
    bench,
    calendar,
    channels,
    drift,
    freeze,
    items,
    jobs,
    run,
    scope,
    sealed,
    tokens,
    users,
    wechat,
    words,
)
from publisher.cli.common import AS_KEY, ChineseUsageGroup
from publisher.config import Settings, get_settings
from publisher.dispatch import celery_sender, install_sender


@click.group(cls=ChineseUsageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--as",
    "as_name",
    default=None,
    metavar="NAME",
    help="act as this user: their role and departments apply, and actions are recorded as "
    "cli:<OS user> as NAME",
)
@click.pass_context
def main(ctx: click.Context, as_name: str | None) -> None:
    """publisher: publish once, reach every channel."""
    ctx.meta[AS_KEY] = as_name
    if ctx.invoked_subcommand not in _SERVERS:
        # The audit trail's "client address" of what this command does (the servers' rows
        # are the requests' or their own).
        ctx.with_resource(client_address_as(f"cli@{socket.gethostname()}"))
    # What a command commits reaches the workers through a Celery client of this process
    # (`publisher worker` replaces it with its own app's).
    install_sender(celery_sender(_settings_or_exit()))


def _settings_or_exit() -> Settings:
    """The settings; a bad `PUBLISHER_*` variable is bad input: one line each, exit 2."""
    try:
        return get_settings()
    except ValidationError as exc:
        for problem in exc.errors():
            variable = "PUBLISHER_" + "_".join(str(part) for part in problem["loc"]).upper()
            message = str(problem["msg"]).removeprefix("Value error, ")
            if variable not in message:
                message = f"{variable}: {message}"
            click.echo(f"error: {message}", err=True)
        sys.exit(2)


COMMANDS: tuple[click.Command, ...] = (
    run.api,
    run.worker,
    run.beat,
    run.sandbox,
    run.up,
    run.db,
    users.user,
    tokens.token,
    items.items,
    jobs.jobs,
    channels.channels,
    scope.domains,
    scope.departments,
    words.words,
    calendar.calendar,
    freeze.freeze,
    drift.drift,
    audit.audit,
    sealed.secrets_group,
    bench.bench,
    wechat.wechat,
)
# Commands that run a process of the system rather than act once.
_SERVERS = {run.api.name, run.worker.name, run.beat.name, run.sandbox.name, run.up.name}
for command in COMMANDS:
    main.add_command(command)
