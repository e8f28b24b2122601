"""What every command group shares: the actor, the transaction, service errors as exit
codes, the warmed channel pool, and plain-text tables. Imports services, never a group."""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from publisher.config import Settings, get_settings
from publisher.db import get_database
from publisher.delivery.publication import ChannelPool
from publisher.errors import Conflict, Forbidden, InvalidInput, NotFound, PublisherError
from publisher.services.channel_controls import warm_pool
from publisher.shared import shared_store

ACTOR = "cli"
F = TypeVar("F", bound=Callable[..., Any])


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
