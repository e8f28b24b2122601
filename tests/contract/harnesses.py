"""One harness per channel kind: an adapter pointed at its running sandbox, for the shared suite.

`HARNESSES` is the explicit table `kind → "module:factory"`. A factory takes no arguments and
is a context manager yielding a `ContractHarness` (start the sandbox on enter, stop it on
exit). A new channel adds its own module with a `make` factory and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from channels.base import Channel, Publication
from channels.catalogue import CatalogueChannel
from channels.website import WebsiteChannel
from tests.support import RunningSandbox, running_sandbox, sample_publication

HARNESSES: dict[str, str] = {
    "website": "tests.contract.harnesses:make_website",
    "catalogue": "tests.contract.harnesses:make_catalogue",
    "wechat": "tests.contract.harness_wechat:make",
    "weibo": "tests.contract.harness_weibo:make",
}

CLIENT_TIMEOUT_SECONDS = 1.0
SANDBOX_APP_ID = "sandbox"
SANDBOX_SECRET = "sandbox-secret"


@dataclass
class ContractHarness:
    """What the shared suite needs to exercise one channel.

    - `channel`: the adapter, pointed at `sandbox` with a `CLIENT_TIMEOUT_SECONDS` client timeout;
    - `copies(pub)`: how many live copies of `pub` the sandbox holds (asked over HTTP);
    - `refused(pub)`: a variant of `pub` the channel refuses permanently;
    - `refusal_text`: text the channel's own refusal message contains (checked verbatim);
    - `publication(**overrides)`: a publication this channel accepts.
    """

    kind: str
    channel: Channel
    sandbox: RunningSandbox
    copies: Callable[[Publication], int]
    refused: Callable[[Publication], Publication]
    refusal_text: str
    publication: Callable[..., Publication] = sample_publication


HarnessFactory = Callable[[], AbstractContextManager[ContractHarness]]


def load_factory(kind: str) -> HarnessFactory:
    module_name, _, attr = HARNESSES[kind].partition(":")
    factory: HarnessFactory = getattr(importlib.import_module(module_name), attr)
    return factory


def live_count(sandbox: RunningSandbox, table: str, key: str) -> int:
    """Live records under `records[table][key]` (0 or 1: both channels key by our id)."""
    records: dict[str, Any] = sandbox.inspect()["records"].get(table, {})
    record = records.get(key)
    return int(record is not None and record["status"] == "published")


@contextmanager
def make_website() -> Iterator[ContractHarness]:
    with running_sandbox("website") as sandbox:
        channel = WebsiteChannel(
            sandbox.url, SANDBOX_APP_ID, SANDBOX_SECRET, timeout=CLIENT_TIMEOUT_SECONDS
        )
        yield ContractHarness(
            kind="website",
            channel=channel,
            sandbox=sandbox,
            copies=lambda pub: live_count(sandbox, "articles", pub.external_id),
            refused=lambda pub: replace(pub, title="   "),
            refusal_text="title: 不能为空",
        )


@contextmanager
def make_catalogue() -> Iterator[ContractHarness]:
    with running_sandbox("catalogue") as sandbox:
        channel = CatalogueChannel(
            sandbox.url, SANDBOX_APP_ID, SANDBOX_SECRET, timeout=CLIENT_TIMEOUT_SECONDS
        )
        yield ContractHarness(
            kind="catalogue",
            channel=channel,
            sandbox=sandbox,
            copies=lambda pub: live_count(sandbox, "entries", pub.index_no),
            refused=lambda pub: replace(pub, title="长" * 201),
            refusal_text="title: 长度201超过上限200",
        )
