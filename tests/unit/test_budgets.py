"""Daily budgets per endpoint (issue 13): counted in the real shared stores, across threads,
reset at midnight in Beijing, with a smaller share for reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.budgets import DailyBudgets, next_beijing_midnight, spending_for
from channels.errors import QuotaExhausted
from publisher.db import Database
from publisher.models import SharedValue
from publisher.shared import DatabaseSharedStore, RedisSharedStore
from tests.support import fresh_postgres, fresh_redis, sealer_for_tests

# 23:30 in Beijing on 1 December, then 00:30 on the 2nd (UTC+8).
LATE = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
NEXT_DAY = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "redis":
        space = fresh_redis()
        yield RedisSharedStore(space.url, prefix=space.prefix, sealer=sealer_for_tests())
        return
    url = fresh_postgres() if request.param == "postgresql" else f"sqlite:///{tmp_path}/s.db"
    database = Database(url)
    SharedValue.metadata.create_all(database.engine, tables=[SharedValue.__table__])  # type: ignore[list-item]
    yield DatabaseSharedStore(database, sealer=sealer_for_tests())
    database.engine.dispose()


def test_count_loses_nothing_between_concurrent_workers(store: Any) -> None:
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda _: store.count("c", 60), range(80)))
    assert sorted(seen) == list(range(1, 81))


def test_a_budget_refuses_the_call_past_its_limit_until_midnight_in_beijing(store: Any) -> None:
    budgets = DailyBudgets(store, "wechat", {"freepublish/delete": 3})
    for _ in range(3):
        budgets.spend("freepublish/delete", now=LATE)
    with pytest.raises(QuotaExhausted) as caught:
        budgets.spend("freepublish/delete", now=LATE)
    assert caught.value.until == next_beijing_midnight(LATE) == NEXT_DAY.replace(minute=0)
    assert "freepublish/delete" in str(caught.value)
    (use,) = budgets.usage(now=LATE)
    assert (use.used, use.left, use.resets_at) == (3, 0, caught.value.until)
    budgets.spend("freepublish/delete", now=NEXT_DAY)  # a new day in Beijing
    assert budgets.used("freepublish/delete", now=NEXT_DAY) == 1


def test_reconciliation_spends_only_its_share_and_counts_in_the_whole(store: Any) -> None:
    budgets = DailyBudgets(store, "wechat", {"freepublish/getarticle": 10})
    for _ in range(2):
        budgets.spend("freepublish/getarticle", purpose="reconcile", share=0.2, now=LATE)
    with pytest.raises(QuotaExhausted, match="reconcile share"):
        budgets.spend("freepublish/getarticle", purpose="reconcile", share=0.2, now=LATE)
    assert budgets.used("freepublish/getarticle", now=LATE) == 2
    assert budgets.used("freepublish/getarticle", purpose="reconcile", now=LATE) == 2
    with spending_for("reconcile", 0.2), pytest.raises(QuotaExhausted, match="reconcile share"):
        budgets.spend("freepublish/getarticle", now=LATE)  # as an adapter spends, unaware
    for _ in range(8):  # delivering may use what is left, no more
        budgets.spend("freepublish/getarticle", now=LATE)
    with pytest.raises(QuotaExhausted):
        budgets.spend("freepublish/getarticle", now=LATE)


def test_an_endpoint_without_a_limit_is_not_rationed(store: Any) -> None:
    budgets = DailyBudgets(store, "weibo", {})
    for _ in range(5):
        budgets.spend("statuses/show")
    assert budgets.usage() == []
