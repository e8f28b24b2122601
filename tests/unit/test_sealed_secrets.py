"""Channel tokens sealed at rest (README, Secrets at rest): what Redis and `shared_values` hold
is read raw, beside the store; keys, rotation and tampering through the real stores on Redis,
SQLite and PostgreSQL; the settings, the CLI and the API when no key is configured; and no
token in any row or log line after a channel refused it."""

from __future__ import annotations

import base64
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select, text

from channels.base import token_key
from channels.errors import ChannelDisabled
from channels.wechat import WeChatChannel
from publisher.api.app import create_app
from publisher.channel_config import channel_settings
from publisher.cli import main
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import Database
from publisher.models import Base, DeliveryState, SharedValue
from publisher.sealing import Sealer, SecretKeyMissing, decode_key, key_id
from publisher.services.channel_controls import store_credentials
from publisher.services.items import create_item
from publisher.shared import LOCAL_KEY_FILE, DatabaseSharedStore, RedisSharedStore, shared_store
from tests.support import (
    fresh_postgres,
    fresh_redis,
    housing_notice,
    migrated_sqlite,
    publish_reviewed,
    running_sandbox,
    sample_publication,
    sandbox_engine,
    sandbox_settings,
    sealer_for_tests,
    user_with_token,
)

WEIBO = token_key("weibo")
WECHAT = token_key("wechat")
TOKEN = "2.00weibo-oauth-token-of-the-account"
KEY_A, KEY_B = os.urandom(32), os.urandom(32)

Store = RedisSharedStore | DatabaseSharedStore


@dataclass
class Backend:
    """One real store kind: stores on it with a given sealer, and its raw values beside them."""

    build: Callable[[Sealer], Store]
    raw: Callable[[str], str | None]
    write_raw: Callable[[str, str], None]


def _redis_backend() -> Backend:
    space = fresh_redis()
    client = redis.Redis.from_url(space.url, decode_responses=True)

    def raw(key: str) -> str | None:
        value = client.get(space.prefix + key)
        return None if value is None else str(value)

    def write_raw(key: str, value: str) -> None:
        client.set(space.prefix + key, value, keepttl=True)

    return Backend(
        lambda sealer: RedisSharedStore(space.url, space.prefix, sealer=sealer), raw, write_raw
    )


def _database_backend(database: Database) -> Backend:
    def raw(key: str) -> str | None:
        with database.engine.connect() as conn:
            return conn.scalar(text("SELECT value FROM shared_values WHERE key = :k"), {"k": key})

    def write_raw(key: str, value: str) -> None:
        with database.engine.begin() as conn:
            conn.execute(
                text("UPDATE shared_values SET value = :v WHERE key = :k"), {"k": key, "v": value}
            )

    return Backend(lambda sealer: DatabaseSharedStore(database, sealer=sealer), raw, write_raw)


@pytest.fixture(params=["redis", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "redis":
        yield _redis_backend()
        return
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/shared.sqlite")
        SharedValue.metadata.create_all(database.engine, tables=[SharedValue.__table__])  # type: ignore[list-item]
    else:
        database = Database(fresh_postgres())
    try:
        yield _database_backend(database)
    finally:
        database.dispose()


def test_the_raw_value_is_not_the_token_and_the_store_opens_it(backend: Backend) -> None:
    store = backend.build(Sealer(KEY_A))
    store.set(WEIBO, TOKEN)

    raw = backend.raw(WEIBO)

    assert raw is not None and TOKEN not in raw
    assert raw.startswith(f"sealed:v1:{key_id(KEY_A)}:")
    assert store.get(WEIBO) == TOKEN
    store.set(WEIBO, TOKEN)  # a new nonce each time: equal tokens do not show as equal
    assert backend.raw(WEIBO) != raw


def test_counters_and_other_values_stay_plain(backend: Backend) -> None:
    store = backend.build(Sealer(KEY_A))
    store.set("wechat:thumb:abc", "media-id-1", ttl_seconds=60)

    assert backend.raw("wechat:thumb:abc") == "media-id-1"
    assert store.take_slot("weibo:posts", 1, 60) is None
    assert store.take_slot("weibo:posts", 1, 60) is not None


def test_another_key_cannot_open_it_and_says_so_without_the_value(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.build(Sealer(KEY_A)).set(WEIBO, TOKEN)
    raw = backend.raw(WEIBO)
    assert raw is not None

    with caplog.at_level(logging.WARNING, logger="publisher.sealing"):
        assert backend.build(Sealer(KEY_B)).get(WEIBO) is None
        assert backend.build(Sealer(None)).get(WEIBO) is None

    logged = caplog.text
    assert WEIBO in logged and key_id(KEY_A) in logged and "PUBLISHER_SECRET_KEYS_OLD" in logged
    assert TOKEN not in logged and raw.rsplit(":", 1)[1] not in logged


def test_a_value_moved_to_another_key_name_does_not_open(backend: Backend) -> None:
    store = backend.build(Sealer(KEY_A))
    store.set(WEIBO, TOKEN)
    store.set(WECHAT, "wechat-token")
    moved = backend.raw(WEIBO)
    assert moved is not None

    backend.write_raw(WECHAT, moved)

    assert store.get(WECHAT) is None
    assert store.get(WEIBO) == TOKEN


def test_an_altered_value_reads_as_absent(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.build(Sealer(KEY_A))
    store.set(WEIBO, TOKEN)
    raw = backend.raw(WEIBO)
    assert raw is not None
    body = raw.rsplit(":", 1)[1]
    flipped = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]

    backend.write_raw(WEIBO, raw.replace(body, flipped))

    with caplog.at_level(logging.WARNING, logger="publisher.sealing"):
        assert store.get(WEIBO) is None
    assert "altered" in caplog.text
    backend.write_raw(WEIBO, raw.replace(key_id(KEY_A), key_id(KEY_B)))  # another header
    assert backend.build(Sealer(KEY_B, [KEY_A])).get(WEIBO) is None


def test_rotation_old_key_still_opens_and_reseal_moves_every_secret_to_the_new_one(
    backend: Backend,
) -> None:
    backend.build(Sealer(KEY_A)).set(WEIBO, TOKEN, ttl_seconds=3600)
    rotated = backend.build(Sealer(KEY_B, [KEY_A]))

    assert rotated.get(WEIBO) == TOKEN
    assert key_id(KEY_A) in (backend.raw(WEIBO) or "")  # reading leaves it as it was

    assert rotated.reseal() == 1
    assert rotated.reseal() == 0  # nothing left under the old key
    raw = backend.raw(WEIBO)
    assert raw is not None and raw.startswith(f"sealed:v1:{key_id(KEY_B)}:")
    assert backend.build(Sealer(KEY_B)).get(WEIBO) == TOKEN
    assert backend.build(Sealer(KEY_A)).get(WEIBO) is None


def test_reseal_keeps_the_time_to_live() -> None:
    space = fresh_redis()
    RedisSharedStore(space.url, space.prefix, sealer=Sealer(KEY_A)).set(WECHAT, "t", 600)

    RedisSharedStore(space.url, space.prefix, sealer=Sealer(KEY_B, [KEY_A])).reseal()

    with redis.Redis.from_url(space.url) as client:
        assert 0 < client.pttl(space.prefix + WECHAT) <= 600_000


def test_a_token_an_older_version_stored_in_clear_is_absent_until_resealed(
    backend: Backend,
) -> None:
    store = backend.build(Sealer(KEY_A))
    store.set(WEIBO, "placeholder")
    backend.write_raw(WEIBO, TOKEN)  # as the version before sealing wrote it

    assert store.get(WEIBO) is None
    assert store.reseal() == 1
    assert TOKEN not in (backend.raw(WEIBO) or TOKEN) and store.get(WEIBO) == TOKEN


def test_without_a_key_a_store_on_redis_refuses_to_store_a_token() -> None:
    space = fresh_redis()
    store = shared_store(Settings(redis_url=space.url, redis_key_prefix=space.prefix))

    with pytest.raises(SecretKeyMissing, match="PUBLISHER_SECRET_KEY"):
        store.set(WEIBO, TOKEN)

    assert space.keys() == []


def test_without_a_key_on_a_database_server_wechat_is_disabled_and_a_token_is_refused(
    tmp_path: Path, dispatched: list[tuple[int, str, float]]
) -> None:
    settings = Settings(
        var_dir=tmp_path,
        database_url=fresh_postgres(),
        weibo_api_base="http://127.0.0.1:9",
        wechat_appid="wx1",
        wechat_secret="s",
    )
    with pytest.raises(ChannelDisabled, match="PUBLISHER_SECRET_KEY"):
        channel_settings("wechat", settings)
    database = Database(settings.resolved_database_url())
    operator = user_with_token(database, "operator")

    with TestClient(create_app(settings)) as client:
        resp = client.put(
            "/api/v1/channels/weibo/credentials",
            json={"access_token": TOKEN},
            headers={"Authorization": f"Bearer {operator}"},
        )

    assert resp.status_code == 409 and "PUBLISHER_SECRET_KEY" in resp.json()["detail"]
    assert TOKEN not in resp.text
    with database.session() as session:
        assert session.scalars(select(SharedValue.key)).all() == []
    database.dispose()
    assert not (tmp_path / LOCAL_KEY_FILE).exists()


def test_the_embedded_store_makes_its_own_key_file_and_every_process_shares_it(
    publisher_env: Settings,
) -> None:
    shared_store(publisher_env).set(WEIBO, TOKEN)

    key_file = publisher_env.var_dir / LOCAL_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(decode_key(key_file.read_text())) == 32
    assert shared_store(Settings(var_dir=publisher_env.var_dir)).get(WEIBO) == TOKEN
    shared = Database(f"sqlite:///{publisher_env.var_dir / 'shared.sqlite'}")
    with shared.engine.connect() as conn:
        raw = conn.scalar(text("SELECT value FROM shared_values WHERE key = :k"), {"k": WEIBO})
    shared.dispose()
    assert raw and raw.startswith("sealed:v1:") and TOKEN not in raw


def test_a_configured_key_wins_over_the_key_file(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_store(publisher_env).set(WEIBO, TOKEN)  # under the file's key
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", _text(KEY_A))
    reset_settings()

    assert shared_store(get_settings()).get(WEIBO) is None


@pytest.mark.parametrize("value", ["hunter2/is+not*a.key", "c2hvcnQta2V5"])
def test_a_malformed_key_is_refused_at_load_naming_the_variable_not_the_value(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", value)
    reset_settings()

    with pytest.raises(ValidationError) as caught:
        get_settings()
    assert "PUBLISHER_SECRET_KEY" in str(caught.value) and value not in str(caught.value)
    result = CliRunner().invoke(main, ["secrets", "reseal"])
    assert result.exit_code == 2, result.output
    assert "PUBLISHER_SECRET_KEY" in result.output and value not in result.output


def test_old_keys_are_comma_separated_and_a_bad_one_is_named_by_its_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBLISHER_SECRET_KEYS_OLD", f"{_text(KEY_A)}, {_text(KEY_B)}")
    assert len(Settings().secret_keys_old) == 2

    monkeypatch.setenv("PUBLISHER_SECRET_KEYS_OLD", f"{_text(KEY_A)},c2hvcnQta2V5")
    with pytest.raises(ValidationError, match="PUBLISHER_SECRET_KEYS_OLD: key 2 must be 32"):
        Settings()


def test_publisher_secrets_reseal_after_a_rotation(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", _text(KEY_A))
    reset_settings()
    shared_store(get_settings()).set(WEIBO, TOKEN)
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", _text(KEY_B))
    monkeypatch.setenv("PUBLISHER_SECRET_KEYS_OLD", _text(KEY_A))
    reset_settings()

    result = CliRunner().invoke(main, ["secrets", "reseal"])

    assert result.exit_code == 0, result.output
    assert result.output == "已用当前密钥重新加密 1 个保存的密钥\n"
    monkeypatch.delenv("PUBLISHER_SECRET_KEYS_OLD")
    reset_settings()
    assert shared_store(get_settings()).get(WEIBO) == TOKEN
    assert "secrets.reseal" in _every_text(Database(get_settings().resolved_database_url()))


def test_wechat_publishes_on_a_sealing_store_and_redis_never_holds_its_token() -> None:
    space = fresh_redis()
    store = RedisSharedStore(space.url, space.prefix, sealer=sealer_for_tests())
    with running_sandbox("wechat") as sandbox:
        channel = WeChatChannel(
            appid="sandbox",
            secret="sandbox-secret",
            api_base=sandbox.url,
            shared=store,
            timeout=5.0,
        )
        receipt = channel.create(sample_publication())
        issued = list(sandbox.inspect()["records"]["tokens"])

    assert receipt.remote_id and len(issued) == 1
    with redis.Redis.from_url(space.url, decode_responses=True) as client:
        raw = client.get(space.prefix + WECHAT)
    assert raw and raw.startswith("sealed:v1:") and issued[0] not in raw
    assert store.get(WECHAT) == issued[0]


def test_no_row_and_no_log_line_holds_a_token_the_channel_refused(
    tmp_path: Path,
    dispatched: list[tuple[int, str, float]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "weibo-oauth-token-refused-later"
    caplog.set_level(logging.INFO)
    with running_sandbox("website") as website, running_sandbox("weibo") as weibo:
        settings = sandbox_settings(tmp_path, migrated_sqlite(tmp_path), website, weibo)
        engine = sandbox_engine(settings)
        requests.post(f"{weibo.url}/_sandbox/weibo/token", json={"token": secret}, timeout=5)
        store_credentials(engine.pool.shared, "weibo", secret)
        with engine.database.session() as session:
            item_id = create_item(session, settings, housing_notice(1), actor="t").id
            publish_reviewed(session, settings, item_id, enabled_kinds=[])
        by_kind = _deliveries(engine.database)
        assert engine.sync(by_kind["website"], "w").state == DeliveryState.LIVE
        requests.post(f"{weibo.url}/_sandbox/weibo/expire-token", timeout=5)

        assert engine.sync(by_kind["weibo"], "w").state == DeliveryState.DEFERRED

    everything = _every_text(engine.database)
    engine.database.dispose()
    assert "auth_expired" in everything and "21327" in everything  # the attempt row is there
    assert secret not in everything
    assert secret not in caplog.text


def _deliveries(database: Database) -> dict[str, int]:
    from publisher.models import Delivery

    with database.session() as session:
        rows = session.execute(select(Delivery.channel_kind, Delivery.id)).all()
        return {kind: delivery_id for kind, delivery_id in rows}


def _every_text(database: Database) -> str:
    """Every row of every table of the store, as text."""
    with database.engine.connect() as conn:
        return " ".join(
            str(row) for table in Base.metadata.sorted_tables for row in conn.execute(select(table))
        )


def _text(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()
