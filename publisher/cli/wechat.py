"""`publisher wechat digests`: the push digests and what WeChat did with each mass send."""

from __future__ import annotations

from datetime import datetime

import click

from publisher.cli.common import table, unit_of_work
from publisher.services.queries import Page
from publisher.services.wechat_digests import digest_views


@click.group()
def wechat() -> None:
    """The WeChat account: push digests."""


@wechat.command("digests")
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="YYYY-MM-DD")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
def wechat_digests(day: datetime | None, limit: int) -> None:
    """Each digest per audience: sending, sent, failed, rejected (群发保护) or unknown."""
    with unit_of_work() as (session, _):
        views = digest_views(session, day=day.date() if day else None, paging=Page(limit=limit))
    rows = [
        {
            "day": view.day.isoformat(),
            "audience": view.audience,
            "state": view.state,
            "result": view.result,
            "msg_id": view.msg_id,
            "items": [f"{i.item_id}@{i.article_idx}" for i in view.items],
            "error": view.error,
        }
        for view in views
    ]
    click.echo(table(rows, ["day", "audience", "state", "result", "msg_id", "items", "error"]))
