"""The `harness` fixture: every test of the shared suite runs once per channel kind.

Each test gets a fresh sandbox, so records, counters and faults never leak between tests.
Each channel's own quirks are tested in `tests/channels/`, on the same harnesses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.harnesses import HARNESSES, ContractHarness, load_factory


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[ContractHarness]:
    with load_factory(request.param)() as made:
        yield made
