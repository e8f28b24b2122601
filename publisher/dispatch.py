"""The hand-off from a commit to the broker.

Services attach work to the session with `enqueue_after_commit`; it is sent only once that
transaction commits, and a rolled-back session sends nothing. How a message reaches the
workers is installed by each entry point (`install_sender`): the API and the CLI send through
a Celery client of their own (`celery_sender`), the worker through its app. Messages go by
task name and queue, so nothing in `publisher/` imports `workers/`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from publisher.config import Settings, broker_transport_options
from publisher.models import Delivery, utcnow

log = logging.getLogger(__name__)

# The worker's task names (workers/tasks.py registers them under these names).
SYNC_DELIVERY = "workers.tasks.sync_delivery"
POKE_WECHAT_PUBLISH = "workers.tasks.poke_wechat_publish"
CONTROL_QUEUE = "control"


def queue_for(kind: str) -> str:
    """One queue per channel kind, so that a slow channel never holds up the others."""
    return f"channel.{kind}"


@dataclass(frozen=True)
class Message:
    task: str
    queue: str
    args: list[Any] = field(default_factory=list)
    countdown: float | None = None


Sender = Callable[[Message], None]
# (delivery id, channel kind, seconds to wait before the worker takes it)
Dispatcher = Callable[[list[tuple[int, str, float]]], None]


class NoSender(RuntimeError):
    """No entry point installed a sender in this process."""


_sender: Sender | None = None
_dispatcher: Dispatcher | None = None


def install_sender(sender: Sender | None) -> None:
    """Install how messages reach the broker in this process (None: none)."""
    global _sender
    _sender = sender


def sender_installed() -> bool:
    return _sender is not None


def send(message: Message) -> None:
    """Send one message now. Raises `NoSender` when no entry point installed a sender."""
    if _sender is None:
        raise NoSender(f"no sender installed; {message.task} not sent")
    _sender(message)


def celery_sender(settings: Settings) -> Sender:
    """A sender through a Celery client of this process's own (it only publishes)."""
    from celery import Celery

    client = Celery("publisher-sender", set_as_current=False)
    client.conf.update(
        broker_url=settings.resolved_broker_url(),
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(settings),
        task_ignore_result=True,
        result_backend=None,
    )
    return app_sender(client)


def app_sender(app: Any) -> Sender:
    """A sender through a Celery app (`app.send_task`)."""

    def send_with_app(message: Message) -> None:
        app.send_task(
            message.task,
            args=message.args,
            queue=message.queue,
            countdown=message.countdown or None,
        )

    return send_with_app


def send_deliveries(pairs: list[tuple[int, str, float]]) -> None:
    """One `sync_delivery` message per delivery, on its channel's queue."""
    for delivery_id, kind, countdown in pairs:
        send(Message(SYNC_DELIVERY, queue_for(kind), [delivery_id], countdown))


def poke_wechat_publish_later(publish_id: str, tries_left: int = 5) -> None:
    """Ask a WeChat worker, shortly, to make the delivery waiting on job `publish_id` due."""
    send(Message(POKE_WECHAT_PUBLISH, queue_for("wechat"), [publish_id, tries_left], 2))


# --- after commit -----------------------------------------------------------------------------

_ENQUEUE_KEY = "publisher.enqueue"
_MARKED_KEY = "publisher.enqueue.marked"  # ids whose `dispatched_at` the caller has set


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Replace what receives the deliveries of each commit (None: `send_deliveries`).
    Tests record them instead of sending."""
    global _dispatcher
    _dispatcher = dispatcher


def enqueue_after_commit(
    session: Session,
    pairs: Iterable[tuple[int, str]],
    countdown: float = 0.0,
    *,
    marked: bool = False,
) -> None:
    """Send these deliveries to the workers once (and only if) `session` commits.

    The commit records when each was handed over (`dispatched_at`), unless the caller says it
    has set that itself in this transaction (`marked`: it was writing the rows anyway)."""
    pending: dict[int, tuple[str, float]] = session.info.setdefault(_ENQUEUE_KEY, {})
    done: set[int] = session.info.setdefault(_MARKED_KEY, set())
    for delivery_id, kind in pairs:
        pending[delivery_id] = (kind, countdown)
        if marked:
            done.add(delivery_id)
        else:
            done.discard(delivery_id)


@event.listens_for(Session, "before_commit")
def _mark_dispatched(session: Session) -> None:
    """Record in the same commit when each message will reach its worker, so the sweeper
    re-sends a delivery only once that message has had its grace period (`resend_after`)."""
    pending: dict[int, tuple[str, float]] | None = session.info.get(_ENQUEUE_KEY)
    if not pending:
        return
    done: set[int] = session.info.get(_MARKED_KEY, set())
    now = utcnow()
    by_delay: dict[float, list[int]] = {}
    for delivery_id, (_, countdown) in pending.items():
        if delivery_id not in done:
            by_delay.setdefault(countdown, []).append(delivery_id)
    for countdown, ids in by_delay.items():
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(dispatched_at=now + timedelta(seconds=countdown))
            .execution_options(synchronize_session=False)
        )


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    session.info.pop(_MARKED_KEY, None)
    pending: dict[int, tuple[str, float]] | None = session.info.pop(_ENQUEUE_KEY, None)
    if not pending:
        return
    dispatcher = _dispatcher or send_deliveries
    try:
        dispatcher([(i, kind, countdown) for i, (kind, countdown) in sorted(pending.items())])
    except Exception:  # the sweeper re-sends due deliveries; a broker hiccup only delays them
        log.warning("could not send %d deliveries to the broker", len(pending), exc_info=True)


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_ENQUEUE_KEY, None)
    session.info.pop(_MARKED_KEY, None)
