"""Engine, sessions and the after-commit hook that hands deliveries to the workers.

Services never commit: the request, task or CLI command that owns the session does. Work that
must reach the broker is attached to the session with `enqueue_after_commit` and is sent only
once the transaction that created it has committed; a rolled-back session sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, event, update
from sqlalchemy.orm import Session, sessionmaker

from publisher.config import Settings, get_settings
from publisher.models import Delivery, utcnow

log = logging.getLogger(__name__)

_ENQUEUE_KEY = "publisher.enqueue"
_MARKED_KEY = "publisher.enqueue.marked"  # ids whose `dispatched_at` the caller has set

# (delivery id, channel kind, seconds to wait before the worker takes it)
Dispatcher = Callable[[list[tuple[int, str, float]]], None]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout (API, worker and beat write)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN
            # instead (below) so that concurrent writers queue on busy_timeout, not deadlock.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """One engine and its session factory, built once per process from the settings."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


_database: Database | None = None


def get_database(settings: Settings | None = None) -> Database:
    global _database
    settings = settings or get_settings()
    url = settings.resolved_database_url()
    if _database is None or _database.url != url:
        if url.startswith("sqlite"):
            settings.var_dir.mkdir(parents=True, exist_ok=True)
        _database = Database(url)
    return _database


def reset_database() -> None:
    global _database
    if _database is not None:
        _database.dispose()
    _database = None


# --- after-commit dispatch ------------------------------------------------------------------

_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Install the function that sends `(delivery_id, channel_kind)` pairs to the workers."""
    global _dispatcher
    _dispatcher = dispatcher


def _default_dispatcher(pairs: list[tuple[int, str, float]]) -> None:
    from workers.tasks import send_sync_messages

    send_sync_messages(pairs)


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
    dispatcher = _dispatcher or _default_dispatcher
    try:
        dispatcher([(i, kind, countdown) for i, (kind, countdown) in sorted(pending.items())])
    except Exception:  # the sweeper re-sends due deliveries; a broker hiccup only delays them
        log.warning("could not send %d deliveries to the broker", len(pending), exc_info=True)


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_ENQUEUE_KEY, None)
    session.info.pop(_MARKED_KEY, None)
