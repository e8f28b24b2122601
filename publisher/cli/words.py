"""`publisher words`: the sensitive-word list of the pre-publish checks (audited)."""

from __future__ import annotations

from typing import IO

import click

from publisher.cli.common import acting, fail_on_service_errors, table, unit_of_work
from publisher.i18n import t
from publisher.models import Role
from publisher.services.findings import add_words, list_words, remove_word


@click.group()
def words() -> None:
    """The sensitive words the pre-publish checks flag (matched in any case)."""


@words.command("list")
@fail_on_service_errors
def words_list() -> None:
    """Every word on the list (reviewers, supervisors, admins)."""
    acting(Role.REVIEWER, Role.SUPERVISOR)
    with unit_of_work() as (session, _):
        rows = [
            {"word": w.word, "added_by": w.added_by, "added_at": w.added_at}
            for w in list_words(session)
        ]
    click.echo(table(rows, ["word", "added_by", "added_at"]))
    click.echo(t("cli.words.count", count=len(rows)))


@words.command("add")
@click.argument("given", metavar="WORD...", nargs=-1)
@click.option(
    "--file",
    "source",
    type=click.File("r", encoding="utf-8"),
    help="one word a line (blank lines and lines starting with # are skipped); - for stdin",
)
@fail_on_service_errors
def words_add(given: tuple[str, ...], source: IO[str] | None) -> None:
    """Add words (admins). Those already listed, in any case or width, are left alone."""
    who = acting()
    wanted = list(given)
    if source is not None:
        lines = (line.strip() for line in source.read().splitlines())
        wanted += [line for line in lines if line and not line.startswith("#")]
    with unit_of_work() as (session, _):
        added, already = add_words(session, wanted, actor=who.actor)
    click.echo(t("cli.words.added", count=len(added)))
    if already:
        click.echo(t("cli.words.already", words="、".join(already)))


@words.command("remove")
@click.argument("word")
@fail_on_service_errors
def words_remove(word: str) -> None:
    """Remove a word (admins), matched in any case or width."""
    who = acting()
    with unit_of_work() as (session, _):
        removed = remove_word(session, word, actor=who.actor)
    click.echo(t("cli.words.removed", word=removed))
