"""The `harness` fixture: every test of the shared suite runs once per channel kind.

Each test gets a fresh sandbox, so records, counters and faults never leak between tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels.base import SharedStore
from tests.contract.harnesses import HARNESSES, ContractHarness, load_factory
from tests.support import scratch_shared_store


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[ContractHarness]:
    with load_factory(request.param)() as made:
        yield made


@pytest.fixture
def store() -> Iterator[SharedStore]:
    with scratch_shared_store() as shared:
        yield shared
