"""WeChat's daily quotas, lookups by id, token refreshes and errcodes, against the sandbox.

The sandbox enforces the quotas of WeChat's API_Call_Limits page itself (45009 past them, each
refusal counted as `refused:45009`); the adapter keeps its own budgets so that WeChat never has
to refuse it: work past a budget is deferred (`QuotaExhausted` until midnight), never failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import ValidationError
from wechatpy.exceptions import WeChatClientException

from channels.base import Publication, Receipt, Remote
from channels.budgets import next_beijing_midnight, spending_for
from channels.errors import AuthExpired, OutcomeUnknown, Permanent, QuotaExhausted, Retryable
from channels.wechat import WeChatChannel
from channels.wechat_api import FORCE_REFRESH
from channels.wechat_calls import DAILY_LIMITS, wechat_error
from publisher.channel_config import build_channel
from publisher.config import Settings
from publisher.delivery.engine import DeliveryEngine
from publisher.models import Channel as ChannelRow
from publisher.models import Delivery, DeliveryState
from publisher.services.items import create_item, retract_item
from publisher.shared import RedisSharedStore
from tests.contract.harness_wechat import make
from tests.contract.harnesses import ContractHarness
from tests.support import (
    RunningSandbox,
    fresh_redis,
    item_delivery,
    item_fields,
    make_due,
    migrated_sqlite,
    publish_reviewed,
    running_sandbox,
    sample_publication,
    sandbox_engine,
    sandbox_settings,
    scratch_shared_store,
    sealer_for_tests,
)

ITEMS = 300
RECONCILE_SHARE = 0.2


def wechat_settings(sandbox: RunningSandbox, **changes: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/wechat", json=changes, timeout=5).raise_for_status()


def counters(sandbox: RunningSandbox) -> dict[str, int]:
    result: dict[str, int] = sandbox.inspect()["counters"]
    return result


def item(n: int) -> Publication:
    return sample_publication(
        item_id=n,
        external_id=f"item-{n}",
        title=f"公示第{n}号",
        website_url=f"http://127.0.0.1:8101/articles/item-{n}.html",
        content_hash=f"{n:064d}",
    )


@pytest.fixture
def harness() -> Iterator[ContractHarness]:
    with make() as made:
        wechat_settings(made.sandbox, publish_delay_seconds=0.0)
        yield made


def publish_settled(channel: WeChatChannel, pub: Publication) -> Receipt | None:
    """Create `pub` and poll it once, as the engine would: the receipt, or None when the
    day's budget deferred it (QuotaExhausted, never a failure)."""
    try:
        receipt = channel.create(pub)
    except QuotaExhausted:
        return None
    found = channel.lookup(pub, Remote(receipt.remote_id, receipt.url, receipt.state))
    assert found is not None and found.complete, "the job finished before its first poll"
    return replace(found, state={**receipt.state, **found.state})


def reconcile(channel: WeChatChannel, live: dict[Publication, Receipt]) -> tuple[int, int]:
    """Look every live item up within the reconciler's share; (checked, deferred)."""
    checked = deferred = 0
    with spending_for("reconcile", RECONCILE_SHARE):
        for pub, receipt in live.items():
            try:
                found = channel.lookup(pub, Remote(receipt.remote_id, receipt.url, receipt.state))
            except QuotaExhausted:
                deferred += 1
                continue
            assert found is not None and found.remote_id == receipt.remote_id, "never missing"
            checked += 1
    return checked, deferred


def test_300_items_published_and_reconciled_twice_in_one_day_never_meet_45009(
    harness: ContractHarness,
) -> None:
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)
    pubs = [item(n) for n in range(1, ITEMS + 1)]

    live = {pub: r for pub in pubs if (r := publish_settled(channel, pub)) is not None}
    runs = [reconcile(channel, live), reconcile(channel, live)]
    retried = [pub for pub in pubs if pub not in live and publish_settled(channel, pub)]

    submits, getarticle = DAILY_LIMITS["freepublish/submit"], DAILY_LIMITS["freepublish/getarticle"]
    assert len(live) == submits, "the day's submits went out; the rest wait for midnight"
    assert retried == [], "deferred items stay deferred until the budget resets"
    share = int(getarticle * RECONCILE_SHARE)
    assert runs == [(share, submits - share), (0, submits)]
    seen = counters(harness.sandbox)
    assert not any(name.startswith("refused:") for name in seen), seen
    assert seen["publishes_submitted"] == submits
    assert all(harness.copies(pub) == 1 for pub in live), "no second post"
    assert all(harness.copies(pub) == 0 for pub in pubs if pub not in live)
    assert all(use.used <= use.limit for use in channel.budget_usage())
    daily = harness.sandbox.inspect()["records"]["daily"]
    assert daily["calls:freepublish/get"] == submits
    assert daily["calls:freepublish/getarticle"] == share


def test_a_lost_delete_answer_is_looked_up_by_id_without_the_published_list(
    harness: ContractHarness,
) -> None:
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)
    pub = item(1)
    published = publish_settled(channel, pub)
    assert published is not None
    remote = Remote(published.remote_id, published.url, published.state)
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2.0)

    with pytest.raises(OutcomeUnknown):
        channel.delete(remote)
    found = channel.lookup(pub, remote)

    seen = counters(harness.sandbox)
    assert found is None, "the article it held by id is gone"
    assert seen["calls:/cgi-bin/freepublish/getarticle"] == 1
    assert seen.get("calls:/cgi-bin/freepublish/batchget", 0) == 0


def test_a_lost_submit_answer_searches_the_published_list_once(harness: ContractHarness) -> None:
    channel = harness.channel
    pub = item(1)
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2.0)

    with pytest.raises(OutcomeUnknown):
        channel.create(pub)
    found = channel.lookup(pub, None)

    assert found is not None and found.complete, "found by its link: its id was never ours"
    assert counters(harness.sandbox)["calls:/cgi-bin/freepublish/batchget"] == 1


def test_a_spent_poll_budget_makes_the_poll_wait_not_fail() -> None:
    with make(daily_limits={**DAILY_LIMITS, "freepublish/get": 0}) as spent:
        receipt = spent.channel.create(item(1))
        waiting = spent.channel.lookup(
            item(1), Remote(receipt.remote_id, receipt.url, receipt.state)
        )

        assert waiting is not None and not waiting.complete
        assert waiting.poll_after is not None and waiting.poll_after > 60
        assert counters(spent.sandbox).get("calls:/cgi-bin/freepublish/get", 0) == 0


def test_many_workers_seeing_a_refused_token_force_exactly_one_refresh() -> None:
    space, workers = fresh_redis(), 8
    with running_sandbox("wechat") as sandbox:

        def adapter() -> WeChatChannel:
            store = RedisSharedStore(space.url, prefix=space.prefix, sealer=sealer_for_tests())
            return WeChatChannel(
                appid="sandbox", secret="sandbox-secret", api_base=sandbox.url, shared=store
            )

        adapter().create(item(0))  # every worker now shares one token
        requests.post(f"{sandbox.url}/_sandbox/wechat/refuse_token", timeout=5)
        channels = [adapter() for _ in range(workers)]
        start, errors = threading.Barrier(workers), []

        def work(n: int) -> None:
            start.wait()
            try:
                channels[n].create(item(n + 1))
            except Exception as exc:  # reported below: the assertion shows which and why
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        seen = counters(sandbox)

    assert errors == []
    assert seen["force_refreshes"] == 1
    assert seen["publishes_submitted"] == workers + 1
    assert seen["refused:40001"] >= 1


def test_a_refused_token_with_the_forced_refreshes_spent_is_deferred() -> None:
    with make(daily_limits={**DAILY_LIMITS, FORCE_REFRESH: 0}) as spent:
        spent.channel.create(item(1))
        requests.post(f"{spent.sandbox.url}/_sandbox/wechat/refuse_token", timeout=5)

        with pytest.raises(QuotaExhausted):
            spent.channel.create(item(2))
        assert counters(spent.sandbox).get("force_refreshes", 0) == 0


def test_a_second_refused_token_within_30_seconds_of_a_forced_refresh_is_retried_later(
    harness: ContractHarness,
) -> None:
    sandbox = harness.sandbox
    harness.channel.create(item(1))
    requests.post(f"{sandbox.url}/_sandbox/wechat/refuse_token", timeout=5)
    harness.channel.create(item(2))  # forced once
    requests.post(f"{sandbox.url}/_sandbox/wechat/refuse_token", timeout=5)

    with pytest.raises(Retryable) as later:
        harness.channel.create(item(3))
    assert later.value.retry_after == 30.0
    assert counters(sandbox)["force_refreshes"] == 1


def test_48001_on_a_publish_waits_for_the_operator_with_wechats_own_text(
    harness: ContractHarness,
) -> None:
    wechat_settings(harness.sandbox, unauthorized=["freepublish/submit"])

    with pytest.raises(AuthExpired) as refused:
        harness.channel.create(item(1))

    assert refused.value.refreshable is False, "the channel waits for an operator"
    assert (refused.value.code, refused.value.message) == ("48001", "api unauthorized")
    assert "该公众号未获得此接口权限" in refused.value.explanation


def test_48001_on_a_delete_fails_that_delete_and_asks_for_it_by_hand(
    harness: ContractHarness,
) -> None:
    channel = harness.channel
    assert isinstance(channel, WeChatChannel)
    published = publish_settled(channel, item(1))
    assert published is not None
    wechat_settings(harness.sandbox, unauthorized=["freepublish/delete"])

    with pytest.raises(Permanent) as refused:
        channel.delete(Remote(published.remote_id, published.url, published.state))

    assert (refused.value.code, refused.value.message) == ("48001", "api unauthorized")
    assert "该公众号未获得删除接口权限，请在公众号后台手动删除该文章" in refused.value.explanation
    assert harness.copies(item(1)) == 1


def test_45066_a_mass_send_retried_too_fast_is_retried_after_a_minute() -> None:
    said = "same clientmsgid retry too fast"

    error = wechat_error("message/mass/sendall", WeChatClientException(45066, said))

    assert isinstance(error, Retryable) and error.retry_after == 60.0
    assert (error.code, error.message) == ("45066", said)


def test_45009_from_wechat_itself_still_defers_until_midnight() -> None:
    error = wechat_error("freepublish/get", WeChatClientException(45009, "reach max api"))

    assert isinstance(error, QuotaExhausted)
    assert error.until == next_beijing_midnight()
    assert (error.code, error.message) == ("45009", "reach max api")


def test_daily_limits_from_the_settings_lie_over_wechats_own(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        wechat_appid="sandbox",
        wechat_secret="sandbox-secret",
        wechat_daily_limits={"freepublish/getarticle": 500},
    )
    with scratch_shared_store() as shared:
        usage = build_channel("wechat", settings, shared).budget_usage()

    limits = {use.endpoint: use.limit for use in usage}
    assert limits == {**DAILY_LIMITS, "freepublish/getarticle": 500}


def test_a_negative_daily_limit_is_refused_naming_the_setting_and_endpoint() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(wechat_daily_limits={"freepublish/get": -1})

    assert refused.value.errors()[0]["loc"] == ("wechat_daily_limits", "freepublish/get")
    assert "greater than or equal to 0" in str(refused.value)


def test_48001_on_a_retraction_fails_that_retraction_and_wechat_keeps_publishing(
    tmp_path: Path, dispatched: list[tuple[int, str, float]]
) -> None:
    with running_sandbox("website") as website, running_sandbox("wechat") as wechat:
        settings = sandbox_settings(
            tmp_path, migrated_sqlite(tmp_path), website, wechat, wechat_poll_seconds=0.2
        )
        engine = sandbox_engine(settings)
        retracted = published_on_wechat(engine, settings, "松山湖临时救助公示")
        wechat_settings(wechat, unauthorized=["freepublish/delete"])
        with engine.database.session() as session:
            retract_item(session, retracted, actor="t")

        failed = synced(engine, retracted, "wechat")
        later = published_on_wechat(engine, settings, "松山湖老旧小区改造公示")
        later_state = item_delivery(engine.database, later, "wechat").state
        with engine.database.session() as session:
            row = session.get(ChannelRow, "wechat")
            held = row is not None and row.needs_reauth
        articles = wechat.inspect()["records"]["articles"].values()
        engine.database.dispose()

    assert failed.state == DeliveryState.FAILED and failed.last_error_kind == "permanent"
    assert (failed.last_error_code, failed.last_error_message) == ("48001", "api unauthorized")
    assert "请在公众号后台手动删除该文章" in (failed.explanation or "")
    assert not held, "the channel is not held for re-authorisation"
    assert later_state == DeliveryState.LIVE, "another item still publishes"
    assert [a["deleted"] for a in articles] == [False, False], "staff delete it by hand"


def published_on_wechat(engine: DeliveryEngine, settings: Settings, title: str) -> int:
    kinds = ["website", "wechat"]
    with engine.database.session() as session:
        fields = item_fields(title=title, channels=kinds)
        item_id = int(create_item(session, settings, fields, actor="t").id)
    with engine.database.session() as session:
        publish_reviewed(session, settings, item_id, enabled_kinds=kinds)
    synced(engine, item_id, "website")
    deadline = time.monotonic() + 10
    while synced(engine, item_id, "wechat").state != DeliveryState.LIVE:
        assert time.monotonic() < deadline, "never live on WeChat"
        time.sleep(0.2)
    return item_id


def synced(engine: DeliveryEngine, item_id: int, kind: str) -> Delivery:
    delivery = item_delivery(engine.database, item_id, kind)
    make_due(engine.database, delivery.id)
    engine.sync(delivery.id, "test-worker")
    found: Delivery = item_delivery(engine.database, item_id, kind)
    return found


def test_an_edit_with_the_days_submits_spent_leaves_the_published_article_alone() -> None:
    with make(daily_limits={**DAILY_LIMITS, "freepublish/submit": 1}) as spent:
        channel = spent.channel
        assert isinstance(channel, WeChatChannel)
        wechat_settings(spent.sandbox, publish_delay_seconds=0.0)
        published = publish_settled(channel, item(1))
        assert published is not None
        edited = replace(item(1), title="公示第1号（更新）", content_hash="e" * 64)

        with pytest.raises(QuotaExhausted):
            channel.update(edited, Remote(published.remote_id, published.url, published.state))

        assert spent.copies(item(1)) == 1, "not deleted when it cannot be republished today"
        assert counters(spent.sandbox).get("calls:/cgi-bin/freepublish/delete", 0) == 0
