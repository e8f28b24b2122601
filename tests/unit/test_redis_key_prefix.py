"""`PUBLISHER_REDIS_KEY_PREFIX`: which broker gets kombu's `global_keyprefix`, the shared
store's keys, and the tests' own key spaces (deleted by prefix, never FLUSHDB). A real worker
under a prefix: `tests/e2e/test_redis_key_space.py`."""

from __future__ import annotations

from pathlib import Path

import redis
from pydantic import SecretStr

from publisher.config import Settings, broker_transport_options
from publisher.shared import RedisSharedStore, shared_store
from tests.support import TEST_SECRET_KEY, fresh_redis, redis_keys


def test_the_embedded_broker_keeps_its_sqlite_options(tmp_path: Path) -> None:
    options = broker_transport_options(Settings(var_dir=tmp_path, redis_key_prefix="p:"))

    assert options == {"connect_args": {"timeout": 30}}


def test_a_redis_broker_is_prefixed_only_when_a_prefix_is_set() -> None:
    url = "redis://127.0.0.1:6379/0"

    assert broker_transport_options(Settings(broker_url=url)) == {"visibility_timeout": 600}
    assert broker_transport_options(Settings(broker_url=url, redis_key_prefix="ci 7:")) == {
        "visibility_timeout": 600,
        "global_keyprefix": "ci 7:",
        "client_name": "ci_7:",  # Redis refuses spaces in connection names
    }


def test_the_shared_store_keeps_publisher_colon_unless_told() -> None:
    url = "redis://127.0.0.1:6379/15"  # no connection is made until a key is read or written

    default = shared_store(Settings(redis_url=url))
    prefixed = shared_store(Settings(redis_url=url, redis_key_prefix="ci:"))

    assert isinstance(default, RedisSharedStore) and default.prefix == "publisher:"
    assert isinstance(prefixed, RedisSharedStore) and prefixed.prefix == "ci:"


def test_the_shared_store_writes_and_names_its_connections_under_the_prefix() -> None:
    space = fresh_redis()
    store = shared_store(
        Settings(
            redis_url=space.url,
            redis_key_prefix=space.prefix,
            secret_key=SecretStr(TEST_SECRET_KEY),
        )
    )

    store.set("wechat:access_token", "t", ttl_seconds=60)
    assert store.take_slot("weibo:posts", 1, 60) is None

    keys = space.keys()
    assert len(keys) == 2 and keys[0].startswith(f"{space.prefix}rate:weibo:posts:")
    assert keys[1] == f"{space.prefix}wechat:access_token"
    with redis.Redis.from_url(space.url, decode_responses=True) as client:
        assert space.prefix in {entry.get("name") for entry in client.client_list()}
    assert space.delete_keys() == 2 and space.keys() == []


def test_a_key_space_deletes_exactly_its_own_keys() -> None:
    space = fresh_redis()
    # Glob characters in a key are matched literally; a neighbour sharing all but the
    # separator is not ours.
    ours = [f"{space.prefix}a", f"{space.prefix}[b]*"]
    neighbour = space.prefix.rstrip(":") + "0:a"
    with redis.Redis.from_url(space.url) as client:
        for key in [*ours, neighbour]:
            client.set(key, "1", ex=60)
        try:
            assert space.keys() == sorted(ours)
            assert space.delete_keys() == 2
            assert space.keys() == [] and client.exists(neighbour) == 1
        finally:
            client.delete(neighbour)
    assert redis_keys(space.url, space.prefix) == []
