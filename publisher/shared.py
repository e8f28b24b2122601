"""State shared by every worker (tokens, rate windows): Redis, or the database when embedded.

Both implement `channels.base.SharedStore`. Rate windows are fixed windows: `take_slot` counts
one event in the window containing now and answers how long to wait when the window is full.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Integer, Text, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from channels.base import SharedStore
from publisher.config import DEFAULT_SHARED_KEY_PREFIX, Settings, redis_client_name
from publisher.db import Database, get_database
from publisher.models import SharedValue


def _window(window_seconds: float, now: float) -> tuple[int, float]:
    start = math.floor(now / window_seconds) * window_seconds
    return int(start), start + window_seconds - now


class RedisSharedStore:
    """Every key starts with `prefix`; `client_name` names the connections (`CLIENT LIST`)."""

    def __init__(
        self, url: str, prefix: str = DEFAULT_SHARED_KEY_PREFIX, client_name: str | None = None
    ) -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=True, client_name=client_name)
        self.prefix = prefix

    def get(self, key: str) -> str | None:
        value = self.redis.get(self.prefix + key)
        return None if value is None else str(value)

    def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        px = None if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        self.redis.set(self.prefix + key, value, px=px)

    def delete(self, key: str) -> None:
        self.redis.delete(self.prefix + key)

    def add(self, key: str, value: str, ttl_seconds: float) -> bool:
        """Set `key` unless it is set (atomic: `SET NX`); True if this call set it."""
        px = max(1, int(ttl_seconds * 1000))
        return bool(self.redis.set(self.prefix + key, value, px=px, nx=True))

    def take_slot(self, key: str, limit: int, window_seconds: float) -> float | None:
        start, remaining = _window(window_seconds, time.time())
        counter = f"{self.prefix}rate:{key}:{start}"
        pipe = self.redis.pipeline()
        pipe.incr(counter)
        pipe.expire(counter, int(window_seconds) + 60)
        count = int(pipe.execute()[0])
        return None if count <= limit else remaining


class DatabaseSharedStore:
    """The embedded stand-in: one row per key in `shared_values`, each call its own transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, key: str) -> str | None:
        with self.database.session() as session:
            row = session.get(SharedValue, key)
            if row is None or (row.expires_at and row.expires_at <= datetime.now(UTC)):
                return None
            return row.value

    def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        expires = None
        if ttl_seconds is not None:
            expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        with self.database.session() as session:
            row = session.get(SharedValue, key)
            if row is None:
                session.add(SharedValue(key=key, value=value, expires_at=expires))
            else:
                row.value, row.expires_at = value, expires

    def delete(self, key: str) -> None:
        with self.database.session() as session:
            session.execute(delete(SharedValue).where(SharedValue.key == key))

    def add(self, key: str, value: str, ttl_seconds: float) -> bool:
        """Set `key` unless it is set and unexpired; True if this call set it.

        One statement, so that of two processes adding the same key at once only one wins:
        an insert that takes the place of an expired row, else does nothing.
        """
        now = datetime.now(UTC)
        with self.database.session() as session:
            stmt = _insert_for(session)(SharedValue).values(
                key=key, value=value, expires_at=now + timedelta(seconds=ttl_seconds)
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[SharedValue.key],
                set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
                where=SharedValue.expires_at <= now,
            )
            added = session.execute(stmt.returning(SharedValue.key)).first() is not None
            session.execute(delete(SharedValue).where(SharedValue.expires_at <= now))
        return added

    def take_slot(self, key: str, limit: int, window_seconds: float) -> float | None:
        start, remaining = _window(window_seconds, time.time())
        counter = f"rate:{key}:{start}"
        expires = datetime.now(UTC) + timedelta(seconds=remaining + 60)
        with self.database.session() as session:
            stmt = _insert_for(session)(SharedValue).values(
                key=counter, value="1", expires_at=expires
            )
            # Counting in SQL keeps concurrent workers from losing increments.
            stmt = stmt.on_conflict_do_update(
                index_elements=[SharedValue.key],
                set_={"value": (SharedValue.value.cast(Integer) + 1).cast(Text)},
            )
            session.execute(stmt)
            count = int(
                session.scalars(select(SharedValue.value).where(SharedValue.key == counter)).one()
            )
            session.execute(
                delete(SharedValue).where(
                    SharedValue.key.like("rate:%"), SharedValue.expires_at < datetime.now(UTC)
                )
            )
        return None if count <= limit else remaining


def _insert_for(session: Session) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT."""
    dialect = session.bind.dialect.name if session.bind else ""
    return pg_insert if dialect == "postgresql" else sqlite_insert


def first_use(
    settings: Settings, key: str, ttl_seconds: float, database: Database | None = None
) -> bool:
    """True the first time `key` is used within `ttl_seconds`, across every process (a
    replay cache: a second use of a signed request is refused)."""
    return _store(settings, database).add(f"once:{key}", "1", ttl_seconds)


def shared_store(settings: Settings, database: Database | None = None) -> SharedStore:
    """Redis when `PUBLISHER_REDIS_URL` is set, else a table in the database.

    On the embedded SQLite default the table lives in its own file (`var/shared.sqlite`):
    SQLite has one writer at a time, and adapters read and write shared state (tokens, rate
    windows) while the caller may hold a write transaction on the store.
    """
    return _store(settings, database)


def _store(settings: Settings, database: Database | None) -> RedisSharedStore | DatabaseSharedStore:
    if settings.redis_url:
        prefix = settings.shared_key_prefix()
        name = redis_client_name(prefix) if settings.redis_key_prefix else None
        return RedisSharedStore(settings.redis_url, prefix, client_name=name)
    database = database or get_database(settings)
    if database.url.startswith("sqlite"):
        return DatabaseSharedStore(_embedded_shared_database(settings))
    return DatabaseSharedStore(database)


_embedded: dict[str, Database] = {}


def _embedded_shared_database(settings: Settings) -> Database:
    url = f"sqlite:///{(settings.var_dir / 'shared.sqlite').resolve()}"
    if url not in _embedded:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        database = Database(url)
        SharedValue.metadata.create_all(database.engine, tables=[SharedValue.__table__])  # type: ignore[list-item]
        _embedded[url] = database
    return _embedded[url]
