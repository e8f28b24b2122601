"""Weibo within its quotas (issue 13): 300 items published and reconciled twice in one day
against the sandbox, which enforces Weibo's documented limits on its own (30 posts an hour,
100 calls a day, https://open.weibo.com/wiki/Rate-limiting). Our budgets stop first: the
sandbox never has to refuse a call, nothing is posted twice, and reconciliation spends no
more than its share."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import requests

from channels.base import Publication, Receipt, Remote
from channels.budgets import BEIJING, spending_for
from channels.errors import RateLimited
from channels.weibo import DAILY_CALLS, WeiboChannel
from tests.contract.harness_weibo import SANDBOX_TOKEN, live_statuses_linking
from tests.support import RunningSandbox, running_sandbox, sample_publication, scratch_shared_store

ITEMS = 300
POSTS_PER_WINDOW = 30
RECONCILE_SHARE = 0.2
# One window for the whole test on both sides: fixed windows, as Weibo's, start on
# multiples of it, and a run must not straddle an hour's boundary.
WINDOW_SECONDS = 10**9


@pytest.fixture
def weibo() -> Iterator[tuple[WeiboChannel, RunningSandbox]]:
    with scratch_shared_store() as shared, running_sandbox("weibo") as sandbox:
        requests.post(
            f"{sandbox.url}/_sandbox/weibo/config",
            json={"rate_limit": POSTS_PER_WINDOW, "rate_window_seconds": WINDOW_SECONDS},
            timeout=5,
        ).raise_for_status()
        channel = WeiboChannel(
            sandbox.url,
            shared,
            access_token=SANDBOX_TOKEN,
            posts_per_window=POSTS_PER_WINDOW,
            window_seconds=WINDOW_SECONDS,
        )
        yield channel, sandbox


def item(n: int) -> Publication:
    return sample_publication(
        item_id=n,
        external_id=f"item-{n}",
        title=f"公示第{n}号",
        website_url=f"http://127.0.0.1:8101/articles/item-{n}.html",
        content_hash=f"{n:064d}",
    )


def reconcile(channel: WeiboChannel, live: dict[Publication, Receipt]) -> tuple[int, int]:
    """Look every live item up within the reconciler's share; (checked, deferred)."""
    checked = deferred = 0
    with spending_for("reconcile", RECONCILE_SHARE):
        for pub, receipt in live.items():
            try:
                found = channel.lookup(pub, Remote(receipt.remote_id, receipt.url, receipt.state))
            except RateLimited:
                deferred += 1
                continue
            assert found is not None and found.remote_id == receipt.remote_id, "never missing"
            checked += 1
    return checked, deferred


def test_300_items_published_and_reconciled_twice_in_one_day_within_weibos_limits(
    weibo: tuple[WeiboChannel, RunningSandbox],
) -> None:
    channel, sandbox = weibo
    pubs = [item(n) for n in range(1, ITEMS + 1)]
    live: dict[Publication, Receipt] = {}
    for pub in pubs:
        try:
            receipt = channel.create(pub)
        except RateLimited:  # our own budget: deferred, never sent, never failed
            continue
        live[pub] = receipt

    runs = [reconcile(channel, live), reconcile(channel, live)]

    share = int(DAILY_CALLS * RECONCILE_SHARE)
    assert len(live) == POSTS_PER_WINDOW, "the window's posts went out; the rest wait"
    assert runs == [(share, POSTS_PER_WINDOW - share), (0, POSTS_PER_WINDOW)]
    assert all(live_statuses_linking(sandbox, pub) == 1 for pub in live), "no second post"
    assert all(live_statuses_linking(sandbox, pub) == 0 for pub in pubs if pub not in live)
    today = datetime.now(BEIJING).date().isoformat()
    calls = sandbox.inspect()["counters"][f"daily_calls_{today}"]
    assert calls == POSTS_PER_WINDOW + share, "every call we made, none the sandbox refused"
    (use,) = channel.budget_usage()
    assert use.used == calls <= use.limit == DAILY_CALLS
