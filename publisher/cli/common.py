"""What every command group shares: the caller, the transaction, service errors as exit
codes, the warmed channel pool, and plain-text output. Imports services, never a group.

What staff read is Chinese, from the message catalogue (`publisher.i18n`): bad input names the
field and the rule (exit 2), a refusal says why (exit 1), a table's headings are `col.<name>`,
times are Beijing time to the second, and URLs and the channels' own error texts are shown
whole, never cut.

The caller: the CLI runs as the operator of the machine (unscoped, recorded as
`cli:<OS user>`), or, with `publisher --as NAME`, as that user: their role and departments
apply as in the API, and actions are recorded as `cli:<OS user> as NAME`.
"""

from __future__ import annotations

import functools
import os
import pwd
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.auth import Principal
from publisher.config import Settings, get_settings
from publisher.db import get_database
from publisher.delivery.publication import ChannelPool
from publisher.errors import FieldProblem, Forbidden, InvalidInput, PublisherError
from publisher.i18n import CATALOGUE, t
from publisher.i18n.deliveries import beijing
from publisher.i18n.problems import zh
from publisher.models import Department, Domain, Role
from publisher.services.channel_controls import warm_pool
from publisher.services.limits import ID_MAX, REASON_MAX
from publisher.services.users import find_user
from publisher.shared import shared_store

F = TypeVar("F", bound=Callable[..., Any])
AS_KEY = "publisher.as"  # where `publisher --as NAME` leaves the name (click's ctx.meta)
_CALLER_KEY = "publisher.caller"


def os_user() -> str:
    """Who runs the command on this machine: the name of the process's uid in the passwd
    database (never LOGNAME or USER, which anyone sets), else `uid<N>`. A name that could
    pass for another actor (`:` or ` as `, any whitespace) is refused for `uid<N>` too."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, OSError):  # a container's uid without a passwd entry
        name = ""
    if not name or ":" in name or " as " in name or any(ch.isspace() for ch in name):
        name = f"uid{uid}"
    return name[:24]


def caller() -> Principal:
    """Who this command acts as: the operator of the machine (every role, every department),
    or the user `publisher --as NAME` names. Raises `InvalidInput` (unknown user) and
    `Forbidden` (disabled user): exit 2 and 1 under `fail_on_service_errors`."""
    ctx = click.get_current_context(silent=True)
    meta: dict[str, Any] = ctx.meta if ctx is not None else {}
    if _CALLER_KEY in meta:
        found: Principal = meta[_CALLER_KEY]
        return found
    name: str | None = meta.get(AS_KEY)
    if name is None:
        principal = Principal(Role.ADMIN, (), f"cli:{os_user()}")
    else:
        with get_database(get_settings()).session() as session:
            user = find_user(session, name)
            if user is None:
                unknown = FieldProblem(
                    "as", "known", f"no user called {name!r}", values={"value": name}
                )
                raise InvalidInput([unknown])
            if user.disabled_at is not None:
                raise Forbidden(
                    f"user {name!r} is disabled", zh=t("refusal.user_disabled", name=name)
                )
            principal = Principal(
                user.role,
                tuple(d.code for d in user.departments),
                f"cli:{os_user()} as {name}",
                user.id,
                name=name,
            )
    meta[_CALLER_KEY] = principal
    return principal


def acting(*roles: Role) -> Principal:
    """The caller, who must have one of `roles` (admins and the operator of the machine
    always do). Raises `Forbidden`."""
    who = caller()
    who.require(*roles)
    return who


# Row ids as the database holds them (a larger one would fail in the driver): exit 2 past it.
ROW_ID = click.IntRange(1, ID_MAX)


class BadValue(click.BadParameter):
    """A value our own check of an option or argument refuses: `rule` names the rule and the
    message is the catalogue's (exit 2)."""

    def __init__(self, rule: str, message: str, *, param_hint: str | None = None) -> None:
        super().__init__(message, param_hint=param_hint)
        self.rule = rule


def reason_text(_ctx: click.Context, option: click.Parameter, value: str | None) -> str | None:
    """A reason or comment of at most `REASON_MAX` characters, as the API takes (exit 2)."""
    if value is not None and len(value) > REASON_MAX:
        raise BadValue("max_length", t("cli.rule.at_most", limit=REASON_MAX))
    return value


def fail_on_service_errors(func: F) -> F:
    """Turn service errors into Chinese lines: exit 2 for bad input (one line per problem,
    naming the field and the rule), 1 for a refusal."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            for problem in exc.problems:
                click.echo(problem_line(problem), err=True)
            sys.exit(2)
        except PublisherError as exc:
            click.echo(t("cli.refused", message=exc.zh or str(exc)), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def problem_line(problem: FieldProblem) -> str:
    if problem.channel:
        return t(
            "cli.problem_on_channel",
            message=zh(problem),
            channel=problem.channel,
            field=problem.field,
            rule=problem.rule,
        )
    return t("cli.problem", message=zh(problem), field=problem.field, rule=problem.rule)


# --- usage errors in Chinese ----------------------------------------------------------------


class ChineseUsageError(click.ClickException):
    """A usage error of click's (a missing option, a bad value, an unknown command) as staff
    read it: click's usage line, then what is wrong in Chinese, naming the parameter and
    the rule. Exit 2, as click's own."""

    exit_code = 2

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(usage_message(error))
        self.ctx = error.ctx

    def show(self, file: IO[Any] | None = None) -> None:
        if self.ctx is not None:
            click.echo(self.ctx.get_usage(), err=True)
            click.echo(t("cli.usage.hint", command=self.ctx.command_path), err=True)
        click.echo(self.message, err=True)


class ChineseUsageGroup(click.Group):
    """A group whose usage errors (its own and its commands') read in Chinese."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise ChineseUsageError(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise ChineseUsageError(exc) from exc


def usage_message(error: click.UsageError) -> str:
    """What is wrong with a command line, in Chinese, naming the parameter and the rule."""
    if isinstance(error, click.MissingParameter) and error.param is not None:
        name = _param_name(error.param)
        if isinstance(error.param, click.Option):
            return t("cli.usage.missing_option", param=name)
        return t("cli.usage.missing_argument", param=name)
    if isinstance(error, click.NoSuchOption):
        options = "、".join(error.possibilities or [])
        suggestion = t("cli.usage.suggestion", options=options) if options else ""
        return t("cli.usage.no_such_option", option=error.option_name, suggestion=suggestion)
    if isinstance(error, click.BadOptionUsage):
        return t("cli.usage.option_needs_value", option=error.option_name)
    if isinstance(error, click.BadParameter):
        rule, message = _rule_of(error)
        if isinstance(error.param_hint, str):
            name = error.param_hint
        else:
            name = _param_name(error.param) if error.param is not None else "?"
        return t("cli.usage.bad_value", param=name, message=message, rule=rule)
    no_such_command = getattr(click.exceptions, "NoSuchCommand", None)
    if no_such_command is not None and isinstance(error, no_such_command):
        return t("cli.usage.no_such_command", command=error.command_name)
    return t("cli.usage.other", message=error.format_message())


def _param_name(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name


def _rule_of(error: click.BadParameter) -> tuple[str, str]:
    """The rule a bad value broke, and its message: ours (`BadValue`), or that of the
    parameter's type."""
    if isinstance(error, BadValue):
        return error.rule, error.message
    kind = error.param.type if error.param is not None else None
    if isinstance(kind, click.Choice):
        return "choice", t("cli.rule.choice", choices="、".join(str(c) for c in kind.choices))
    if isinstance(kind, click.IntRange):
        if kind.max is None:
            return "int_range", t("cli.rule.int_min", min=kind.min)
        return "int_range", t("cli.rule.int_range", min=kind.min, max=kind.max)
    if isinstance(kind, click.DateTime):
        return "date", t("cli.rule.date")
    if kind is click.INT:
        return "int", t("cli.rule.int")
    if kind is click.FLOAT:
        return "float", t("cli.rule.float")
    if isinstance(kind, click.Path):
        return "path", t("cli.rule.path")
    if isinstance(kind, click.File):
        return "file", t("cli.rule.file")
    return "value", error.message


@contextmanager
def unit_of_work() -> Iterator[tuple[Session, Settings]]:
    """One transaction on the database the settings name: committed when the block ends."""
    settings = get_settings()
    with get_database(settings).session() as session:
        yield session, settings


def channel_pool(settings: Settings) -> ChannelPool:
    """The channel pool on the shared store of the settings' database, adapters not built."""
    return ChannelPool(settings, shared_store(settings, get_database(settings)))


def warm_channel_pool(settings: Settings) -> ChannelPool:
    """Adapters built before any session opens (on SQLite they read the shared store)."""
    pool = channel_pool(settings)
    warm_pool(pool)
    return pool


# --- names beside codes ---------------------------------------------------------------------


class ScopeNames:
    """The Chinese names of the departments and domains, to show beside their codes
    (`sgj 社管局`); read once per command."""

    def __init__(self, session: Session) -> None:
        departments = session.execute(select(Department.code, Department.name))
        domains = session.execute(select(Domain.code, Domain.name))
        self.departments = {code: name for code, name in departments}
        self.domains = {code: name for code, name in domains}

    def department(self, code: str | None) -> str | None:
        return _named(code, self.departments)

    def domain(self, code: str | None) -> str | None:
        return _named(code, self.domains)


def _named(code: str | None, names: Mapping[str, str]) -> str | None:
    if code is None:
        return None
    name = names.get(code)
    return f"{code} {name}" if name else code


# --- plain-text output -------------------------------------------------------------------------


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def clip(text: str, width: int = 48) -> str:
    """`text` cut to `width` columns with "…": for titles in lists only, never for URLs,
    reasons or a channel's error text."""
    if display_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if display_width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def heading(column: str) -> str:
    """A column's Chinese heading (`col.<column>`), or the column's own name upper-cased."""
    return CATALOGUE.get(f"col.{column}", column.upper())


def table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, clipped: Sequence[str] = ()
) -> str:
    """An aligned plain-text table with Chinese headings (CJK characters count as two
    columns). Only the `clipped` columns are cut to fit; everything else is shown whole."""
    cells = [[_cell(row.get(c), clipped=c in clipped) for c in columns] for row in rows]
    titles = [heading(c) for c in columns]
    widths = [
        max([display_width(title), *(display_width(r[i]) for r in cells)])
        for i, title in enumerate(titles)
    ]
    lines = ["  ".join(pad(c, w) for c, w in zip(titles, widths, strict=True)).rstrip()]
    lines += ["  ".join(pad(v, w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any, *, clipped: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return t("cli.yes") if value else t("cli.no")
    if isinstance(value, datetime):
        return beijing(value) or "-"
    return clip(str(value)) if clipped else str(value)


def show_pairs(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(display_width(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{pad(key, width)}  {'-' if value is None else _cell(value)}")
