"""One chaos cluster per module: real processes on the real PostgreSQL and Redis
(`tests.support` fails loudly when either is missing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.cluster import ChaosCluster
from tests.support import fresh_postgres, fresh_redis


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosCluster]:
    redis_space = fresh_redis()
    database_url = fresh_postgres()
    cluster = ChaosCluster(tmp_path_factory.mktemp("chaos"), database_url, redis_space)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop()
