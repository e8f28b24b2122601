"""The WeChat callback as the API serves it (issue 12, item 2): the attack that was found — a
signed callback URL from the access log replayed with another body, naming another item's
article — refused at every step; the replay cache on each shared store; the access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from channels.base import Publication, Receipt, Remote
from channels.wechat import WeChatChannel, finished_key
from publisher.api.app import UNCLAIMED_HINT_SECONDS, serve_app
from publisher.api.wechat_callback import wechat_signature
from publisher.auth import create_token
from publisher.channel_config import build_channel
from publisher.config import Settings
from publisher.db import Database, get_database
from publisher.dispatch import Message, install_sender
from publisher.models import Attempt, AuditEvent, Delivery, DeliveryState, SharedValue
from publisher.services.items import create_item
from publisher.shared import DatabaseSharedStore, RedisSharedStore, shared_store
from publisher.up import new_encoding_aes_key
from tests.support import (
    RunningSandbox,
    fresh_postgres,
    fresh_redis,
    item_delivery,
    item_fields,
    item_json,
    make_due,
    migrated_sqlite,
    publish_reviewed,
    running_sandbox,
    sample_publication,
    sandbox_engine,
    sandbox_settings,
    sealer_for_tests,
    serve_in_thread,
    wechat_on_sandbox,
)

TOKEN = "wechat-callback-token"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox("wechat") as running:
        yield running


@pytest.fixture
def settings(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch, sandbox: RunningSandbox
) -> Settings:
    return wechat_on_sandbox(monkeypatch, sandbox.url, TOKEN)


@pytest.fixture
def sent(client: TestClient) -> Iterator[list[Message]]:
    """What the callback sends to the workers (the app installed its Celery sender)."""
    messages: list[Message] = []
    install_sender(messages.append)
    yield messages
    install_sender(None)


def signed(timestamp: str | None = None, nonce: str = "n0nce") -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    return {
        "timestamp": timestamp,
        "nonce": nonce,
        "signature": wechat_signature(TOKEN, timestamp, nonce),
    }


def event(publish_id: str, article_id: str) -> bytes:
    return (
        "<xml><Event>PUBLISHJOBFINISH</Event><PublishEventInfo>"
        f"<publish_id>{publish_id}</publish_id><publish_status>0</publish_status>"
        f"<article_id>{article_id}</article_id></PublishEventInfo></xml>"
    ).encode()


def finished_rows() -> list[dict[str, Any]]:
    with get_database().session() as session:
        rows = session.query(AuditEvent).filter_by(action="wechat.publish_finished").all()
        return [dict(row.details or {}) for row in rows]


def test_a_replayed_callback_is_refused_and_records_nothing(
    client: TestClient, settings: Settings, sent: list[Message]
) -> None:
    created = client.post("/api/v1/items", json=item_json(), headers=admin()).json()
    with get_database().session() as session:
        session.add(
            Delivery(
                item_id=created["id"],
                channel_kind="wechat",
                desired_revision_id=created["revision"]["id"],
                state=DeliveryState.UNKNOWN,
                remote_id="2247483801",
            )
        )
    query = signed()

    first = client.post("/wechat/callback", params=query, content=event("2247483801", "art-9"))
    replayed = client.post("/wechat/callback", params=query, content=event("2247483801", "art-X"))
    other_job = client.post("/wechat/callback", params=query, content=event("2247483802", "art-9"))

    assert (first.status_code, replayed.status_code, other_job.status_code) == (200, 403, 403)
    assert finished_rows() == [
        {"publish_id": "2247483801", "article_id": "art-9", "published": True}
    ]
    store = shared_store(settings)
    assert store.get(finished_key("2247483801")) == "art-9"
    assert store.get(finished_key("2247483802")) is None


def test_a_job_no_delivery_waits_on_cannot_lend_its_article_to_another_item(
    client: TestClient, settings: Settings, sandbox: RunningSandbox, sent: list[Message]
) -> None:
    channel = build_channel("wechat", settings, shared_store(settings))
    assert isinstance(channel, WeChatChannel)
    theirs_pub = sample_publication(
        item_id=43, external_id="item-43", website_url="http://127.0.0.1:8101/a/43.html"
    )
    theirs = settled(channel, theirs_pub, channel.create(theirs_pub)).remote_id
    # The attacker names the job id WeChat will hand out next (the sandbox's are sequential).
    foreign = str(100_000_000 + len(sandbox.inspect()["records"]["publishes"]) + 1)

    answer = client.post("/wechat/callback", params=signed(), content=event(foreign, theirs))

    assert (answer.status_code, answer.text) == (200, "success")
    with get_database().session() as session:
        assert session.query(Delivery).count() == 0  # nothing was made due, nothing adopted
    assert [m.args[0] for m in sent] == [foreign]  # a worker looks for its delivery shortly
    expires = shared_expiry(settings, finished_key(foreign))
    assert expires is not None and expires <= UNCLAIMED_HINT_SECONDS + 5

    ours_pub = sample_publication()
    receipt = channel.create(ours_pub)
    assert receipt.state["publish_id"] == foreign  # the planted hint is this job's now
    ours = settled(channel, ours_pub, receipt)
    channel.delete(Remote(ours.remote_id, ours.url, ours.state))  # the item is retracted

    articles = sandbox.inspect()["records"]["articles"]
    assert ours.remote_id != theirs
    assert articles[theirs]["deleted"] is False and articles[ours.remote_id]["deleted"] is True


def shared_expiry(settings: Settings, key: str) -> float | None:
    """Seconds until `key` expires in the embedded shared store."""
    store = shared_store(settings)
    assert isinstance(store, DatabaseSharedStore)
    with store.database.session() as session:
        row = session.get(SharedValue, key)
        if row is None or row.expires_at is None:
            return None
        expires_at = row.expires_at
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return (expires_at - datetime.now(UTC)).total_seconds()


def settled(channel: WeChatChannel, pub: Publication, receipt: Receipt) -> Receipt:
    """Look the job up as the engine would until it is done (bounded)."""
    state = dict(receipt.state)
    deadline = time.monotonic() + 10
    while not receipt.complete:
        assert time.monotonic() < deadline, "publish never completed"
        time.sleep(0.1)
        found = channel.lookup(pub, Remote(receipt.remote_id, receipt.url, state))
        assert found is not None
        receipt, state = found, {**state, **found.state}
    return Receipt(receipt.remote_id, receipt.url, state, note=receipt.note)


def admin() -> dict[str, str]:
    with get_database().session() as session:
        return {"Authorization": f"Bearer {create_token(session, 'admin', None, label='test')}"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"])
def test_add_sets_a_key_once_until_it_expires(backend: str, tmp_path: Any) -> None:
    if backend == "redis":
        space = fresh_redis()
        store: Any = RedisSharedStore(space.url, prefix=space.prefix, sealer=sealer_for_tests())
    else:
        url = fresh_postgres() if backend == "postgresql" else f"sqlite:///{tmp_path}/s.sqlite"
        database = Database(url)
        SharedValue.metadata.create_all(database.engine, tables=[SharedValue.__table__])  # type: ignore[list-item]
        store = DatabaseSharedStore(database, sealer=sealer_for_tests())

    assert store.add("once:a", "1", 0.2) is True
    assert store.add("once:a", "2", 60) is False and store.get("once:a") == "1"
    assert store.add("once:b", "1", 60) is True
    time.sleep(0.3)
    assert store.add("once:a", "3", 60) is True and store.get("once:a") == "3"


def test_the_access_log_shows_no_signed_query(settings: Settings) -> None:
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("uvicorn.access")
    with serve_in_thread(serve_app(), log_level="info") as api:
        access.addHandler(capture)
        try:
            query = {**signed(nonce="logged"), "echostr": "e1", "openid": "o-follower"}
            answer = requests.get(f"{api}/wechat/callback", params=query, timeout=5)
            requests.get(
                f"{api}/api/v1/healthz", params={"access_token": "t0k", "a": "1"}, timeout=5
            )
        finally:
            access.removeHandler(capture)

    lines = [record.getMessage() for record in records]
    assert answer.status_code == 200 and len(lines) == 2
    assert '"GET /wechat/callback HTTP/1.1" 200' in lines[0]
    assert query["signature"] not in lines[0] and "o-follower" not in lines[0]
    assert "access_token=redacted&a=1" in lines[1] and "t0k" not in lines[1]


def test_the_attempt_says_why_an_announced_article_was_not_adopted(
    tmp_path: Any, sandbox: RunningSandbox, dispatched: Any
) -> None:
    with running_sandbox("website") as website:
        settings = sandbox_settings(
            tmp_path, migrated_sqlite(tmp_path), website, sandbox, wechat_poll_seconds=0.2
        )
        engine = sandbox_engine(settings)
        theirs_item = publish(engine, settings, "松山湖2026年老旧小区改造计划公示")
        ours_item = publish(engine, settings, "松山湖2026年城乡困难群众临时救助资金发放情况公示")
        theirs = live_on_wechat(engine, theirs_item).remote_id or ""
        waiting = sync(engine, ours_item, "wechat")  # submitted: waits on its publish job
        engine.pool.shared.set(finished_key(waiting.remote_id or ""), theirs)  # a forged hint
        ours = live_on_wechat(engine, ours_item)
        with engine.database.session() as session:
            notes = session.scalars(
                select(Attempt.explanation).where(Attempt.delivery_id == ours.id)
            ).all()
        engine.database.dispose()

    assert ours.remote_id and ours.remote_id != theirs
    (note,) = [n for n in notes if n]
    assert "不是本条信息的文章" in note and theirs in note


def publish(engine: Any, settings: Settings, title: str) -> int:
    with engine.database.session() as session:
        fields = item_fields(title=title, channels=["website", "wechat"])
        item_id = int(create_item(session, settings, fields, actor="t").id)
    with engine.database.session() as session:
        publish_reviewed(session, settings, item_id, enabled_kinds=["website", "wechat"])
    assert sync(engine, item_id, "website").state == DeliveryState.LIVE
    return item_id


def sync(engine: Any, item_id: int, kind: str) -> Delivery:
    delivery = item_delivery(engine.database, item_id, kind)
    make_due(engine.database, delivery.id)
    engine.sync(delivery.id, "test-worker")
    found: Delivery = item_delivery(engine.database, item_id, kind)
    return found


def live_on_wechat(engine: Any, item_id: int) -> Delivery:
    deadline = time.monotonic() + 10
    while (delivery := sync(engine, item_id, "wechat")).state != DeliveryState.LIVE:
        assert time.monotonic() < deadline, f"still {delivery.state}: {delivery.explanation}"
        time.sleep(0.2)
    return delivery


def test_a_malformed_aes_key_is_refused_naming_the_variable_never_the_value(
    publisher_env: Settings,
) -> None:
    bad = "k" * 42 + "!"
    with pytest.raises(ValidationError) as refused:
        Settings(wechat_aes_key=bad, wechat_callback_token="t", wechat_appid="wx1")
    assert "PUBLISHER_WECHAT_AES_KEY must be the account's 43-character" in str(refused.value)
    assert bad not in str(refused.value)
    with pytest.raises(ValidationError, match="needs PUBLISHER_WECHAT_CALLBACK_TOKEN"):
        Settings(wechat_aes_key=new_encoding_aes_key())
    key = new_encoding_aes_key()
    assert (
        Settings(wechat_aes_key=key, wechat_callback_token="t", wechat_appid="wx1").wechat_aes_key
        == key
    )
