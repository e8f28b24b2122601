"""The Celery app: Redis in production, Celery's SQLAlchemy transport on SQLite by default.

One queue per channel kind (`channel.website`, …) so a slow or rate-limited channel never holds
up the others, and a `control` queue for the sweeper. Tasks acknowledge late and are
re-delivered if a worker dies; the database lease makes a second delivery harmless.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_process_init
from kombu import Queue

from channels.registry import KINDS
from publisher.config import Settings, broker_transport_options, get_settings
from publisher.dispatch import CONTROL_QUEUE, app_sender, install_sender, queue_for
from publisher.process import freeze_startup_objects


def make_celery(settings: Settings) -> Celery:
    app = Celery("publisher", include=["workers.tasks"])
    app.conf.update(
        broker_url=settings.resolved_broker_url(),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker_transport_options(settings),
        task_default_queue=CONTROL_QUEUE,
        task_queues=[Queue(CONTROL_QUEUE), *(Queue(queue_for(kind)) for kind in KINDS)],
        task_routes={
            "workers.tasks.sweep": {"queue": CONTROL_QUEUE},
            "workers.tasks.send_wechat_digest": {"queue": queue_for("wechat")},
            "workers.tasks.check_drift": {"queue": CONTROL_QUEUE},
            "workers.tasks.prune_audit": {"queue": CONTROL_QUEUE},
        },
        beat_schedule={
            "sweep": {
                "task": "workers.tasks.sweep",
                "schedule": settings.sweep_interval_seconds,
                "options": {"expires": settings.sweep_interval_seconds * 2},
            },
            # Checks every few minutes; sends only once the digest time has come, once a day.
            "wechat-digest": {
                "task": "workers.tasks.send_wechat_digest",
                "schedule": 300.0,
                "options": {"expires": 290},
            },
            # Retention is counted in days: once a day, at a quiet hour (local time).
            "prune-audit": {
                "task": "workers.tasks.prune_audit",
                "schedule": crontab(hour=3, minute=17),
                "options": {"expires": 12 * 3600},
            },
            "check-drift": {
                "task": "workers.tasks.check_drift",
                "schedule": settings.reconcile_interval_seconds,
                "options": {"expires": settings.reconcile_interval_seconds / 2},
            },
        },
        timezone=settings.timezone,
        worker_hijack_root_logger=False,
    )
    if settings.resolved_broker_url().startswith("sqla+"):
        # The SQLAlchemy transport polls once a second by default and takes no option for
        # it, hence the class attribute.
        from kombu.transport.sqlalchemy import Transport

        Transport.polling_interval = 0.2
    return app


app = make_celery(get_settings())
# What the worker's tasks hand on after their commits goes through this app.
install_sender(app_sender(app))


@worker_process_init.connect
def _pool_process_started(**_: Any) -> None:
    freeze_startup_objects()
