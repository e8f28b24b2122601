"""`publisher audit`: check the audit trail's chain, prune it to the retention."""

from __future__ import annotations

import re
import sys

import click

from publisher.audit_trail import VERIFY_BATCH, prune_audit_trail, tail_problem, verify_chain
from publisher.cli.common import BadValue, acting, fail_on_service_errors
from publisher.config import get_settings
from publisher.db import get_database
from publisher.i18n import t
from publisher.i18n.deliveries import beijing
from publisher.models import Role

_TAIL = re.compile(r"(\d+):([0-9a-f]{64})")


def _tail(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, str] | None:
    if value is None:
        return None
    match = _TAIL.fullmatch(value.strip().lower())
    if match is None:
        raise BadValue("format", t("cli.rule.tail"))
    return int(match.group(1)), match.group(2)


@click.group()
def audit() -> None:
    """The audit trail: every action, chained by SHA-256 (README: Audit trail)."""


@audit.command("verify")
@click.option(
    "--print-tail",
    is_flag=True,
    help="print the last row's ID:HASH, to record outside the database",
)
@click.option(
    "--expect-tail",
    callback=_tail,
    metavar="ID:HASH",
    help="fail unless the row recorded earlier (--print-tail) is still there, unchanged",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=VERIFY_BATCH, hidden=True)
@fail_on_service_errors
def audit_verify(print_tail: bool, expect_tail: tuple[int, str] | None, batch_size: int) -> None:
    """Check every row's hash and link; exit 1 naming the first broken row."""
    acting(Role.SUPERVISOR)
    database = get_database(get_settings())
    report = verify_chain(database, batch_size=batch_size)
    broken = report.broken
    if broken is not None:
        line = t(
            "cli.audit.broken",
            row=broken.row_id,
            at=beijing(broken.at) or "?",
            action=broken.action,
            reason=broken.reason,
            checked=report.checked,
        )
        click.echo(line, err=True)
        sys.exit(1)
    click.echo(t("cli.audit.holds", count=report.checked))
    if expect_tail is not None:
        problem = tail_problem(database, report, *expect_tail)
        if problem is not None:
            click.echo(t("cli.audit.tail_mismatch", problem=problem), err=True)
            sys.exit(1)
        click.echo(t("cli.audit.tail_matches", row=expect_tail[0]))
    if print_tail:
        click.echo(
            f"{report.tail_id}:{report.tail_hash}" if report.tail_id else t("cli.audit.empty")
        )


@audit.command("prune")
@click.option("--dry-run", is_flag=True, help="say what would be removed, remove nothing")
@fail_on_service_errors
def audit_prune(dry_run: bool) -> None:
    """Remove rows older than PUBLISHER_AUDIT_RETENTION_DAYS (recorded as a chained row)."""
    who = acting()
    settings = get_settings()
    pruned = prune_audit_trail(get_database(settings), settings, actor=who.actor, dry_run=dry_run)
    days, cutoff = settings.audit_retention_days, beijing(pruned.cutoff)
    keep = t("cli.audit.keep", days=days, cutoff=cutoff)
    if pruned.through_id is None:
        click.echo(t("cli.audit.nothing", keep=keep))
    elif dry_run:
        line = t("cli.audit.would_remove", count=pruned.count, keep=keep, row=pruned.through_id)
        click.echo(line)
    else:
        line = t("cli.audit.removed", count=pruned.count, keep=keep, row=pruned.through_id)
        click.echo(line)
