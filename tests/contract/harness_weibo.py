"""The Weibo harness for the shared contract suite: the adapter against the Weibo sandbox.

Pacing state lives in a real shared store (the embedded SQLite one) private to the harness.
A copy of a publication is a live status linking to its website article URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from channels.base import Publication
from channels.weibo import WeiboChannel
from tests.contract.harnesses import CLIENT_TIMEOUT_SECONDS, ContractHarness
from tests.support import RunningSandbox, running_sandbox, scratch_shared_store

SANDBOX_TOKEN = "sandbox"


def live_statuses_linking(sandbox: RunningSandbox, pub: Publication) -> int:
    statuses: dict[str, Any] = sandbox.inspect()["records"].get("statuses", {})
    url = pub.website_url or "\0"
    return sum(1 for s in statuses.values() if not s["deleted"] and url in s["text"])


@contextmanager
def make() -> Iterator[ContractHarness]:
    with scratch_shared_store() as shared, running_sandbox("weibo") as sandbox:
        channel = WeiboChannel(
            sandbox.url,
            shared,
            access_token=SANDBOX_TOKEN,
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
        yield ContractHarness(
            kind="weibo",
            channel=channel,
            sandbox=sandbox,
            copies=lambda pub: live_statuses_linking(sandbox, pub),
            # Weibo refuses a status without a link on the app's safe domain (10017).
            refused=lambda pub: replace(
                pub, website_url="http://www.example.org/articles/item-42.html"
            ),
            refusal_text="parameter (status)'s value invalid",
        )
