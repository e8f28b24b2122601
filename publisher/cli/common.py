"""What every command group shares: the caller, the transaction, service errors as exit
codes, the warmed channel pool, and plain-text tables. Imports services, never a group.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from publisher.auth import Principal
from publisher.config import Settings, get_settings
from publisher.db import get_database
from publisher.delivery.publication import ChannelPool
from publisher.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidInput,
    NotFound,
    PublisherError,
)
from publisher.models import Role
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
                raise InvalidInput([FieldProblem("as", "known", f"no user called {name!r}")])
            if user.disabled_at is not None:
                raise Forbidden(f"user {name!r} is disabled")
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


def reason_text(_ctx: click.Context, option: click.Parameter, value: str | None) -> str | None:
    """A reason or comment of at most `REASON_MAX` characters, as the API takes (exit 2)."""
    if value is not None and len(value) > REASON_MAX:
        raise click.BadParameter(f"at most {REASON_MAX} characters", param=option)
    return value


def fail_on_service_errors(func: F) -> F:
    """Turn service errors into one-line messages: exit 2 for bad input, 1 otherwise."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            for p in exc.problems:
                where = f" [{p.channel}]" if p.channel else ""
                click.echo(f"error: {p.field} ({p.rule}){where}: {p.message}", err=True)
            sys.exit(2)
        except (NotFound, Conflict, Forbidden, PublisherError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


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


# --- plain-text output -------------------------------------------------------------------------


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def clip(text: str, width: int = 48) -> str:
    if display_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if display_width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An aligned plain-text table (CJK characters count as two columns)."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [
        max([display_width(c.upper()), *(display_width(r[i]) for r in cells)])
        for i, c in enumerate(columns)
    ]
    lines = ["  ".join(pad(c.upper(), w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(pad(v, w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return clip(str(value))


def show_pairs(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(display_width(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{pad(key, width)}  {'-' if value is None else value}")
