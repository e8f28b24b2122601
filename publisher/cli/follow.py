"""What the item commands show of an item's deliveries: one line per channel with its state,
and the live URL in full or why it waits and until when (Beijing time); and `items publish
--wait`, which follows those lines until every channel is live or waits with a reason.

A failed channel is named with its error in Chinese, the channel's own text beside it. Shared
by the item and job commands; imports `common` and services, like a group.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click

from publisher.cli.common import display_width, pad, unit_of_work
from publisher.i18n import t
from publisher.i18n.deliveries import channel_name, error_text, state_name, waiting_reason
from publisher.services.queries import item_view

# Nothing to wait for on these: done, or stopped by someone.
SETTLED = frozenset({"live", "withdrawn", "cancelled"})


def detail(delivery: Mapping[str, Any]) -> str:
    """The live URL (whole), or why the delivery is not live and until when."""
    if delivery["state"] == "live":
        return str(delivery.get("url") or "")
    return waiting_reason(delivery) or ""


def delivery_rows(deliveries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Deliveries as table rows: channel and state with their Chinese names, the reason."""
    return [
        {
            **d,
            "channel": f"{d['channel']} {channel_name(d['channel'])}",
            "state": f"{d['state']} {state_name(d['state'])}",
            "reason": None if d["state"] == "live" else waiting_reason(d),
        }
        for d in deliveries
    ]


def channel_line(delivery: Mapping[str, Any]) -> str:
    kind = delivery["channel"]
    return (
        f"{pad(kind, 10)}{pad(channel_name(kind), 14)}"
        f"{pad(state_name(delivery['state']), 12)}{detail(delivery)}"
    ).rstrip()


def still_moving(delivery: Mapping[str, Any], deliveries: Sequence[Mapping[str, Any]]) -> bool:
    """Whether `delivery` is on its way with nothing to explain yet: queued and due, being
    sent, or waiting for a website page that is itself still on its way."""
    if delivery["state"] == "running":
        return True
    if delivery["state"] in ("pending", "deferred") and delivery.get("wait_reason") == "website":
        websites = [d for d in deliveries if d["channel"] == "website"]
        return any(d["state"] not in ("failed", "cancelled") for d in websites)
    if delivery["state"] == "pending":
        return waiting_reason(delivery) == t("wait.pending")
    return False


class ChannelLines:
    """The lines of one item's channels on the terminal: redrawn in place on a TTY (as many
    rows up as the last drawing took, wrapped lines counted), appended when one changes
    otherwise (a log, a pipe)."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.rows_drawn = 0
        self.shown: dict[int, str] = {}

    def draw(self, deliveries: Sequence[Mapping[str, Any]]) -> None:
        lines = [(d["id"], channel_line(d)) for d in deliveries]
        if not self.tty:
            for delivery_id, line in lines:
                if self.shown.get(delivery_id) != line:
                    click.echo(line)
                    self.shown[delivery_id] = line
            return
        if [line for _, line in lines] == list(self.shown.values()):
            return
        if self.rows_drawn:
            click.echo(f"\x1b[{self.rows_drawn}F\x1b[J", nl=False)
        columns = max(1, shutil.get_terminal_size().columns)
        for _, line in lines:
            click.echo(line)
        self.rows_drawn = sum(max(1, math.ceil(display_width(line) / columns)) for _, line in lines)
        self.shown = dict(lines)


def follow_deliveries(item_id: int, timeout: float, interval: float = 0.5) -> int:
    """Follow the item's channels until each is live, failed or waiting with a reason: 0
    when none failed, 1 when one did (each failure named on stderr, in Chinese, with the
    channel's own error text), 3 when `timeout` seconds pass first."""
    lines = ChannelLines(sys.stdout.isatty())
    deadline = time.monotonic() + timeout
    while True:
        with unit_of_work() as (session, _):
            deliveries = item_view(session, item_id)["deliveries"]
        lines.draw(deliveries)
        if deliveries and not any(still_moving(d, deliveries) for d in deliveries):
            return _outcome(deliveries)
        if time.monotonic() > deadline:
            click.echo(t("cli.wait.timeout", seconds=f"{timeout:g}"), err=True)
            return 3
        time.sleep(interval)


def _outcome(deliveries: Sequence[Mapping[str, Any]]) -> int:
    failed = [d for d in deliveries if d["state"] == "failed"]
    for d in failed:
        error = error_text(d.get("last_error")) or state_name("failed")
        name = channel_name(d["channel"])
        click.echo(t("cli.wait.failed", channel=name, kind=d["channel"], error=error), err=True)
    if failed:
        return 1
    waiting = [d for d in deliveries if d["state"] not in SETTLED]
    if waiting:
        click.echo(t("cli.wait.waiting", count=len(waiting)))
    else:
        click.echo(t("cli.wait.done"))
    return 0
