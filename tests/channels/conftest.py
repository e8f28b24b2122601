"""Each channel's quirks beyond the shared contract (`tests/contract/`), one file a channel,
on the contract's harnesses (`tests.contract.harnesses`) and sandboxes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from channels.base import SharedStore
from tests.support import scratch_shared_store


@pytest.fixture
def store() -> Iterator[SharedStore]:
    """A real shared store on a throw-away SQLite file."""
    with scratch_shared_store() as shared:
        yield shared


FirstUse = Callable[[str, float], bool]


@pytest.fixture
def first_use() -> Iterator[FirstUse]:
    """A real replay cache for the WeChat callback: the embedded shared store's `add`."""
    with scratch_shared_store() as replays:
        yield lambda key, seconds: bool(replays.add(key, "1", seconds))
