"""Each channel's quirks beyond the shared contract (`tests/contract/`), one file a channel,
on the contract's harnesses (`tests.contract.harnesses`) and sandboxes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels.base import SharedStore
from tests.support import scratch_shared_store


@pytest.fixture
def store() -> Iterator[SharedStore]:
    """A real shared store on a throw-away SQLite file."""
    with scratch_shared_store() as shared:
        yield shared
