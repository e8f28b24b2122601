"""Two worker processes, each with its own adapter, share ONE WeChat access token via Redis."""

from __future__ import annotations

import multiprocessing

from channels.wechat import WeChatChannel
from publisher.shared import RedisSharedStore
from tests.support import (
    RedisSpace,
    fresh_redis,
    running_sandbox,
    sample_publication,
    sealer_for_tests,
)


def publish_items(api_base: str, redis_space: RedisSpace, worker: int, count: int) -> None:
    """One worker process: its own adapter and store connection, `count` publications."""
    channel = WeChatChannel(
        appid="sandbox",
        secret="sandbox-secret",
        api_base=api_base,
        shared=RedisSharedStore(
            redis_space.url, prefix=redis_space.prefix, sealer=sealer_for_tests()
        ),
        timeout=5.0,
    )
    for n in range(count):
        item_id = worker * 100 + n
        channel.create(
            sample_publication(
                item_id=item_id, external_id=f"item-{item_id}", title=f"公示{item_id}"
            )
        )


def test_two_workers_publishing_twenty_items_fetch_one_token() -> None:
    redis_space = fresh_redis()
    context = multiprocessing.get_context("spawn")
    with running_sandbox("wechat") as sandbox:
        workers = [
            context.Process(target=publish_items, args=(sandbox.url, redis_space, worker, 10))
            for worker in (1, 2)
        ]
        for process in workers:
            process.start()
        for process in workers:
            process.join(timeout=60)
        counters = sandbox.inspect()["counters"]

    assert [p.exitcode for p in workers] == [0, 0]
    assert counters["publishes_submitted"] == 20
    assert counters["tokens_issued"] == 1
    assert counters.get("token_calls", 0) == 0
    assert counters["stable_token_calls"] <= 2
