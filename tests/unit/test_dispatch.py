"""The hand-off from a commit to the broker: by task name and queue, after commit only, through
the sender the entry point installed (here a real Celery client on the embedded broker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from channels.registry import KINDS
from publisher.config import Settings, broker_transport_options
from publisher.db import Database
from publisher.dispatch import (
    POKE_WECHAT_PUBLISH,
    SYNC_DELIVERY,
    Message,
    NoSender,
    celery_sender,
    install_sender,
    poke_wechat_publish_later,
    queue_for,
)
from publisher.models import Delivery
from publisher.services.items import create_item
from tests.support import item_fields, migrated_sqlite, publish_reviewed


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, database_url=migrated_sqlite(tmp_path))


@pytest.fixture
def sent() -> Iterator[list[Message]]:
    """What reaches the installed sender; no sender is left installed afterwards."""
    messages: list[Message] = []
    install_sender(messages.append)
    yield messages
    install_sender(None)


def test_a_commit_sends_the_due_deliveries_by_task_name_on_their_channel_queue(
    settings: Settings, sent: list[Message]
) -> None:
    database = Database(settings.resolved_database_url())
    with database.session() as session:
        item = create_item(session, settings, item_fields(), actor="t")
    with database.session() as session:
        publish_reviewed(session, settings, item.id, enabled_kinds=list(KINDS))
        assert sent == []  # nothing before the commit
    with database.session() as session:
        deliveries = {d.channel_kind: d.id for d in session.query(Delivery)}
    database.dispose()
    # The website goes first; the others wait for its page and are woken when it is live.
    assert [(m.task, m.queue, m.args) for m in sent] == [
        (SYNC_DELIVERY, queue_for("website"), [deliveries["website"]])
    ]


def test_a_rolled_back_publish_sends_nothing(settings: Settings, sent: list[Message]) -> None:
    database = Database(settings.resolved_database_url())
    with database.session() as session:
        item = create_item(session, settings, item_fields(), actor="t")
    with pytest.raises(RuntimeError), database.session() as session:
        publish_reviewed(session, settings, item.id, enabled_kinds=list(KINDS))
        raise RuntimeError("the request failed after publishing")
    database.dispose()
    assert sent == []


def test_without_a_sender_the_send_fails_loudly() -> None:
    install_sender(None)
    with pytest.raises(NoSender, match=POKE_WECHAT_PUBLISH):
        poke_wechat_publish_later("publish-1")


def test_the_celery_sender_puts_the_message_on_the_broker_queue(settings: Settings) -> None:
    """The API's and the CLI's sender: a Celery client of their own, no import of workers/."""
    install_sender(celery_sender(settings))
    try:
        poke_wechat_publish_later("publish-7", tries_left=3)
    finally:
        install_sender(None)
    with (
        Connection(
            settings.resolved_broker_url(),
            transport_options=broker_transport_options(settings),
        ) as conn,
        conn.SimpleQueue(queue_for("wechat")) as queue,
    ):
        received = queue.get(timeout=10)
        headers, body = received.headers, received.payload
        received.ack()
    assert headers["task"] == POKE_WECHAT_PUBLISH
    assert body[0] == ["publish-7", 3]
    assert headers["eta"] is not None  # sent with its countdown
