"""Thin tasks: each takes an id and calls one service function. No ORM object crosses the broker."""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache

from channels.registry import KINDS
from publisher.audit_trail import prune_audit_trail
from publisher.config import get_settings
from publisher.db import get_database
from publisher.delivery.claims import due_deliveries
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.ops import poke_waiting_wechat_delivery
from publisher.delivery.publication import ChannelPool
from publisher.delivery.reconcile import scheduled_reconcile
from publisher.delivery.wechat_digest import scheduled_wechat_digest
from publisher.dispatch import poke_wechat_publish_later, queue_for, send_deliveries
from publisher.models import utcnow
from publisher.shared import shared_store
from workers.app import app

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def delivery_engine() -> DeliveryEngine:
    settings = get_settings()
    database = get_database(settings)
    pool = ChannelPool(settings, shared_store(settings, database))
    return DeliveryEngine(database, settings, pool)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name="workers.tasks.sync_delivery", ignore_result=True)
def sync_delivery(delivery_id: int) -> str | None:
    result = delivery_engine().sync(delivery_id, worker_name())
    return None if result.state is None else result.state.value


@app.task(name="workers.tasks.sweep", ignore_result=True)
def sweep() -> int:
    """Re-send every due, unclaimed delivery: a lost message only delays work."""
    settings = get_settings()
    with get_database(settings).session() as session:
        due = due_deliveries(session, utcnow(), resend_after=settings.resend_after_seconds)
    send_deliveries([(delivery_id, kind, 0.0) for delivery_id, kind in due])
    return len(due)


@app.task(name="workers.tasks.send_wechat_digest", ignore_result=True)
def send_wechat_digest() -> int:
    """Send today's WeChat push digest once its time has come (a no-op before, or after)."""
    return len(
        scheduled_wechat_digest(
            delivery_engine().database, get_settings(), delivery_engine().pool
        ).sent
    )


@app.task(name="workers.tasks.check_drift", ignore_result=True)
def check_drift() -> int:
    """Start the periodic drift check: one task per channel, on that channel's queue."""
    for kind in KINDS:
        check_channel_drift.apply_async(args=[kind], queue=queue_for(kind))
    return len(KINDS)


@app.task(name="workers.tasks.check_channel_drift", ignore_result=True)
def check_channel_drift(kind: str) -> int:
    """Look each live and withdrawn delivery of `kind` up on the channel; repair or report."""
    return len(
        scheduled_reconcile(
            delivery_engine().database, get_settings(), delivery_engine().pool, kind
        ).drift
    )


@app.task(name="workers.tasks.prune_audit", ignore_result=True)
def prune_audit() -> int:
    """Remove audit rows older than the retention (recorded as a chained row of its own)."""
    settings = get_settings()
    return prune_audit_trail(get_database(settings), settings, actor="beat").count


@app.task(name="workers.tasks.poke_wechat_publish", ignore_result=True)
def poke_wechat_publish(publish_id: str, tries_left: int) -> bool:
    """The WeChat job finished: make its delivery due (or try again shortly, a few times)."""
    with get_database().session() as session:
        found = poke_waiting_wechat_delivery(session, publish_id)
    if not found and tries_left > 0:
        poke_wechat_publish_later(publish_id, tries_left - 1)
    return found


__all__ = [
    "app",
    "check_channel_drift",
    "check_drift",
    "poke_wechat_publish",
    "prune_audit",
    "send_wechat_digest",
    "sweep",
    "sync_delivery",
]
