"""The WeChat harness for the shared contract suite: the adapter against the WeChat sandbox.

The shared token and the poll budget live in a real shared store (the embedded SQLite one)
private to the harness. A copy of a publication is a published, undeleted article whose
"阅读原文" link is the publication's website page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from channels.base import Publication
from channels.wechat import WeChatChannel
from tests.contract.harnesses import (
    CLIENT_TIMEOUT_SECONDS,
    SANDBOX_APP_ID,
    SANDBOX_SECRET,
    ContractHarness,
)
from tests.support import RunningSandbox, running_sandbox, scratch_shared_store


def live_articles_linking(sandbox: RunningSandbox, pub: Publication) -> int:
    """Published, undeleted articles whose source URL is `pub`'s website page."""
    articles: dict[str, Any] = sandbox.inspect()["records"].get("articles", {})
    return sum(
        1
        for article in articles.values()
        for news in article["news_item"]
        if not news["is_deleted"] and news["content_source_url"] == pub.website_url
    )


@contextmanager
def make(**channel_options: Any) -> Iterator[ContractHarness]:
    with scratch_shared_store() as shared, running_sandbox("wechat") as sandbox:
        channel = WeChatChannel(
            appid=SANDBOX_APP_ID,
            secret=SANDBOX_SECRET,
            api_base=sandbox.url,
            shared=shared,
            timeout=CLIENT_TIMEOUT_SECONDS,
            **{"poll_seconds": 0.2, **channel_options},
        )
        yield ContractHarness(
            kind="wechat",
            channel=channel,
            sandbox=sandbox,
            copies=lambda pub: live_articles_linking(sandbox, pub),
            refused=lambda pub: replace(pub, title="长" * 40, short_title=None),
            refusal_text="title size out of limit",
        )
