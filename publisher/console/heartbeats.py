"""Worker heartbeats for the dashboard: which Celery workers answer a ping now.

A ping is a broadcast on the broker that waits `PING_TIMEOUT` for answers, so the dashboard
asks for it in a request of its own (an htmx fragment loaded after the page), and one answer
serves every request for `CACHE_SECONDS`: many open dashboards make one ping, not one each.
The embedded broker (Celery's SQLAlchemy transport) cannot broadcast: then nothing is asked
and the page says so, rather than "no worker answered".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from publisher.config import Settings, broker_transport_options
from publisher.models import utcnow

log = logging.getLogger(__name__)

PING_TIMEOUT = 1.0
CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Heartbeats:
    """The workers that answered (`workers`, their Celery names) at `checked_at`; `can_ask`
    False when the broker cannot broadcast; `error` when the broker could not be reached."""

    checked_at: datetime
    workers: list[str] = field(default_factory=list)
    can_ask: bool = True
    error: str | None = None


class WorkerPing:
    """Pings the workers through a Celery client of its own (it only broadcasts)."""

    def __init__(self, settings: Settings) -> None:
        self.broker_url = settings.resolved_broker_url()
        self.transport_options = broker_transport_options(settings)
        self._client: Any = None
        self._lock = threading.Lock()
        self._last: tuple[float, Heartbeats] | None = None

    @property
    def can_ask(self) -> bool:
        return not self.broker_url.startswith("sqla+")

    def read(self) -> Heartbeats:
        """The last answer if it is fresh, else a new ping (one at a time)."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < CACHE_SECONDS:
                return self._last[1]
            found = self._ping()
            self._last = (time.monotonic(), found)
            return found

    def _ping(self) -> Heartbeats:
        if not self.can_ask:
            return Heartbeats(utcnow(), can_ask=False)
        try:
            answers = self._celery().control.inspect(timeout=PING_TIMEOUT).ping() or {}
        except Exception as exc:  # the broker is down: say so on the page, do not fail it
            log.warning("worker ping failed", exc_info=True)
            return Heartbeats(utcnow(), error=type(exc).__name__)
        return Heartbeats(utcnow(), sorted(answers))

    def _celery(self) -> Any:
        if self._client is None:
            from celery import Celery

            client = Celery("publisher-console-ping", set_as_current=False)
            client.conf.update(
                broker_url=self.broker_url,
                broker_connection_retry_on_startup=False,
                broker_connection_timeout=PING_TIMEOUT,
                broker_transport_options=self.transport_options,
                task_ignore_result=True,
                result_backend=None,
            )
            self._client = client
        return self._client


def worker_ping(app_state: Any, settings: Settings) -> WorkerPing:
    """The application's one `WorkerPing` (made on first use)."""
    ping: WorkerPing | None = getattr(app_state, "worker_ping", None)
    if ping is None:
        ping = WorkerPing(settings)
        app_state.worker_ping = ping
    return ping
