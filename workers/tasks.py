"""Thin tasks: each takes an id and calls one service function. No ORM object crosses the broker."""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache

from channels.registry import KINDS
from publisher.config import get_settings
from publisher.db import get_database
from publisher.models import utcnow
from publisher.services import channels as services
from publisher.services.deliveries import ChannelPool, DeliveryEngine, due_deliveries
from publisher.services.reconcile import scheduled_reconcile
from publisher.services.wechat_push import scheduled_wechat_digest
from publisher.shared import shared_store
from workers.app import app, queue_for

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def engine() -> DeliveryEngine:
    settings = get_settings()
    database = get_database(settings)
    pool = ChannelPool(settings, shared_store(settings, database))
    return DeliveryEngine(database, settings, pool)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name="workers.tasks.sync_delivery", ignore_result=True)
def sync_delivery(delivery_id: int) -> str | None:
    result = engine().sync(delivery_id, worker_name())
    return None if result.state is None else result.state.value


@app.task(name="workers.tasks.sweep", ignore_result=True)
def sweep() -> int:
    """Re-send every due, unclaimed delivery: a lost message only delays work."""
    settings = get_settings()
    with get_database(settings).session() as session:
        due = due_deliveries(session, utcnow(), resend_after=settings.resend_after_seconds)
    send_sync_messages([(delivery_id, kind, 0.0) for delivery_id, kind in due])
    return len(due)


@app.task(name="workers.tasks.send_wechat_digest", ignore_result=True)
def send_wechat_digest() -> int:
    """Send today's WeChat push digest once its time has come (a no-op before, or after)."""
    return len(scheduled_wechat_digest(engine().database, get_settings(), engine().pool).sent)


@app.task(name="workers.tasks.check_drift", ignore_result=True)
def check_drift() -> int:
    """Start the periodic drift check: one task per channel, on that channel's queue."""
    for kind in KINDS:
        check_channel_drift.apply_async(args=[kind], queue=queue_for(kind))
    return len(KINDS)


@app.task(name="workers.tasks.check_channel_drift", ignore_result=True)
def check_channel_drift(kind: str) -> int:
    """Look each live and withdrawn delivery of `kind` up on the channel; repair or report."""
    return len(scheduled_reconcile(engine().database, get_settings(), engine().pool, kind).drift)


@app.task(name="workers.tasks.poke_wechat_publish", ignore_result=True)
def poke_wechat_publish(publish_id: str, tries_left: int) -> bool:
    """The WeChat job finished: make its delivery due (or try again shortly, a few times)."""
    with get_database().session() as session:
        found = services.poke_wechat_publish(session, publish_id)
    if not found and tries_left > 0:
        poke_wechat_publish_later(publish_id, tries_left - 1)
    return found


def poke_wechat_publish_later(publish_id: str, tries_left: int = 5) -> None:
    poke_wechat_publish.apply_async(
        args=[publish_id, tries_left], queue=queue_for("wechat"), countdown=2
    )


def send_sync_messages(items: list[tuple[int, str, float]]) -> None:
    """Publish one `sync_delivery` message per delivery on its channel's queue."""
    for delivery_id, kind, countdown in items:
        sync_delivery.apply_async(
            args=[delivery_id], queue=queue_for(kind), countdown=countdown or None
        )


__all__ = [
    "app",
    "check_channel_drift",
    "check_drift",
    "poke_wechat_publish",
    "poke_wechat_publish_later",
    "send_sync_messages",
    "send_wechat_digest",
    "sweep",
    "sync_delivery",
]
