"""Thin tasks: each takes an id and calls one service function. No ORM object crosses the broker."""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache

from celery import shared_task

from channels.registry import KINDS
from publisher.config import get_settings
from publisher.db import get_database
from publisher.models import utcnow
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


@shared_task(name="workers.tasks.sync_delivery", ignore_result=True)
def sync_delivery(delivery_id: int) -> str | None:
    result = engine().sync(delivery_id, worker_name())
    return None if result.state is None else result.state.value


@shared_task(name="workers.tasks.sweep", ignore_result=True)
def sweep() -> int:
    """Re-send every due, unclaimed delivery: a lost message only delays work."""
    database = get_database()
    with database.session() as session:
        due = due_deliveries(session, utcnow())
    send_sync_messages([(delivery_id, kind, 0.0) for delivery_id, kind in due])
    return len(due)


@shared_task(name="workers.tasks.send_wechat_digest", ignore_result=True)
def send_wechat_digest() -> int:
    """Send today's WeChat push digest once its time has come (a no-op before, or after)."""
    return len(scheduled_wechat_digest(engine().database, get_settings(), engine().pool).sent)


@shared_task(name="workers.tasks.check_drift", ignore_result=True)
def check_drift() -> int:
    """Start the periodic drift check: one task per channel, on that channel's queue."""
    for kind in KINDS:
        check_channel_drift.apply_async(args=[kind], queue=queue_for(kind))
    return len(KINDS)


@shared_task(name="workers.tasks.check_channel_drift", ignore_result=True)
def check_channel_drift(kind: str) -> int:
    """Look each live and withdrawn delivery of `kind` up on the channel; repair or report."""
    return len(scheduled_reconcile(engine().database, get_settings(), engine().pool, kind).drift)


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
    "send_sync_messages",
    "send_wechat_digest",
    "sweep",
    "sync_delivery",
]
