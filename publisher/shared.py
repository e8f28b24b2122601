"""State shared by every worker (tokens, rate windows): Redis, or the database when embedded.

Both implement `channels.base.SharedStore`. Rate windows are fixed windows: `take_slot` counts
one event in the window containing now and answers how long to wait when the window is full.
Values under token keys (`channels.base.is_secret_key`) are sealed by the store's `Sealer`
(`publisher.sealing`) on the way in and opened on the way out; counters stay plain.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Integer, Text, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from channels.base import SECRET_KEY_SUFFIX, is_secret_key
from publisher.config import DEFAULT_SHARED_KEY_PREFIX, Settings, redis_client_name
from publisher.db import Database, get_database
from publisher.models import SharedValue
from publisher.sealing import Sealer, decode_key, local_key

# The embedded default's own key, beside its database, when PUBLISHER_SECRET_KEY is unset.
LOCAL_KEY_FILE = "secret.key"


def _window(window_seconds: float, now: float) -> tuple[int, float]:
    start = math.floor(now / window_seconds) * window_seconds
    return int(start), start + window_seconds - now


class _Sealing:
    """What both stores do to a value on its way in and out: seal and open secrets."""

    sealer: Sealer

    def _stored(self, key: str, value: str) -> str:
        return self.sealer.seal(key, value) if is_secret_key(key) else value

    def _read(self, key: str, stored: str | None) -> str | None:
        if stored is None or not is_secret_key(key):
            return stored
        return self.sealer.unseal(key, stored)


class RedisSharedStore(_Sealing):
    """Every key starts with `prefix`; `client_name` names the connections (`CLIENT LIST`)."""

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_SHARED_KEY_PREFIX,
        client_name: str | None = None,
        *,
        sealer: Sealer,
    ) -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=True, client_name=client_name)
        self.prefix = prefix
        self.sealer = sealer

    def get(self, key: str) -> str | None:
        value = self.redis.get(self.prefix + key)
        return self._read(key, None if value is None else str(value))

    def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        px = None if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        self.redis.set(self.prefix + key, self._stored(key, value), px=px)

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

    def count(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        counter = self.prefix + key
        pipe = self.redis.pipeline()
        pipe.incrby(counter, by)
        pipe.pexpire(counter, max(1, int(ttl_seconds * 1000)), nx=True)  # from the first count
        return int(pipe.execute()[0])

    def reseal(self) -> int:
        """Seal every secret not yet under the current key with it (keeping its time to live);
        returns how many. A value rewritten meanwhile is left: its writer sealed it."""
        resealed = 0
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*" + SECRET_KEY_SUFFIX
        for name in self.redis.scan_iter(match=pattern, count=1000):
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(name)
                    # While watching, the pipeline answers at once (not queued).
                    stored: str | None = pipe.get(name)  # type: ignore[assignment]
                    value = stored and self.sealer.resealed(name.removeprefix(self.prefix), stored)
                    if value:
                        pipe.multi()
                        pipe.set(name, value, keepttl=True)
                        pipe.execute()
                        resealed += 1
                except redis.WatchError:
                    continue
        return resealed


class DatabaseSharedStore(_Sealing):
    """The embedded stand-in: one row per key in `shared_values`, each call its own transaction."""

    def __init__(self, database: Database, *, sealer: Sealer) -> None:
        self.database = database
        self.sealer = sealer

    def get(self, key: str) -> str | None:
        with self.database.session() as session:
            row = session.get(SharedValue, key)
            if row is None or (row.expires_at and row.expires_at <= datetime.now(UTC)):
                return None
            return self._read(key, row.value)

    def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        expires = None
        if ttl_seconds is not None:
            expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        value = self._stored(key, value)
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

    def count(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        now = datetime.now(UTC)
        with self.database.session() as session:
            stmt = _insert_for(session)(SharedValue).values(
                key=key, value=str(by), expires_at=now + timedelta(seconds=ttl_seconds)
            )
            # One statement, so concurrent workers lose no count; an expired counter restarts.
            expired = SharedValue.expires_at <= now
            stmt = stmt.on_conflict_do_update(
                index_elements=[SharedValue.key],
                set_={
                    "value": case(
                        (expired, str(by)),
                        else_=(SharedValue.value.cast(Integer) + by).cast(Text),
                    ),
                    "expires_at": case(
                        (expired, stmt.excluded.expires_at), else_=SharedValue.expires_at
                    ),
                },
            )
            return int(session.execute(stmt.returning(SharedValue.value)).scalar_one())

    def reseal(self) -> int:
        """Seal every secret not yet under the current key with it; returns how many. The
        update is conditional on the value read, so a token written meanwhile is kept."""
        resealed = 0
        with self.database.session() as session:
            rows = session.execute(
                select(SharedValue.key, SharedValue.value).where(
                    SharedValue.key.endswith(SECRET_KEY_SUFFIX, autoescape=True)
                )
            ).all()
            for key, stored in rows:
                value = self.sealer.resealed(key, stored)
                if value:
                    done = session.execute(
                        update(SharedValue)
                        .where(SharedValue.key == key, SharedValue.value == stored)
                        .values(value=value)
                    )
                    resealed += done.rowcount  # type: ignore[attr-defined]
        return resealed


def _insert_for(session: Session) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT."""
    dialect = session.bind.dialect.name if session.bind else ""
    return pg_insert if dialect == "postgresql" else sqlite_insert


def first_use(
    settings: Settings, key: str, ttl_seconds: float, database: Database | None = None
) -> bool:
    """True the first time `key` is used within `ttl_seconds`, across every process (a
    replay cache: a second use of a signed request is refused)."""
    return shared_store(settings, database).add(f"once:{key}", "1", ttl_seconds)


def shared_store(
    settings: Settings, database: Database | None = None
) -> RedisSharedStore | DatabaseSharedStore:
    """Redis when `PUBLISHER_REDIS_URL` is set, else a table in the database.

    On the embedded SQLite default the table lives in its own file (`var/shared.sqlite`):
    SQLite has one writer at a time, and adapters read and write shared state (tokens, rate
    windows) while the caller may hold a write transaction on the store.
    """
    sealer = sealer_for(settings)
    if settings.redis_url:
        prefix = settings.shared_key_prefix()
        name = redis_client_name(prefix) if settings.redis_key_prefix else None
        return RedisSharedStore(settings.redis_url, prefix, client_name=name, sealer=sealer)
    database = database or get_database(settings)
    if database.url.startswith("sqlite"):
        return DatabaseSharedStore(_embedded_shared_database(settings), sealer=sealer)
    return DatabaseSharedStore(database, sealer=sealer)


def is_embedded(settings: Settings) -> bool:
    """Whether the shared store is the embedded one: a file under `var_dir`, on one host."""
    return not settings.redis_url and settings.resolved_database_url().startswith("sqlite")


def can_keep_secrets(settings: Settings) -> bool:
    """Whether the settings' shared store can store a token: a key is configured, or the store
    is the embedded one, which makes its own (`sealer_for`)."""
    return settings.secret_key is not None or is_embedded(settings)


def sealer_for(settings: Settings) -> Sealer:
    """The sealer of the settings' shared store.

    The current key is `PUBLISHER_SECRET_KEY`; unset, the embedded store's processes all run
    on one host and share `{var_dir}/secret.key` (made on first use, mode 0600), while a
    store on Redis or a database server gets no key and refuses to store a token
    (`SecretKeyMissing`): workers on other hosts could not open it.
    """
    old = [decode_key(key.get_secret_value()) for key in settings.secret_keys_old]
    if settings.secret_key is not None:
        return Sealer(decode_key(settings.secret_key.get_secret_value()), old)
    if is_embedded(settings):
        return Sealer(local_key(settings.var_dir / LOCAL_KEY_FILE), old)
    return Sealer(None, old)


_embedded: dict[str, Database] = {}


def _embedded_shared_database(settings: Settings) -> Database:
    url = f"sqlite:///{(settings.var_dir / 'shared.sqlite').resolve()}"
    if url not in _embedded:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        database = Database(url)
        SharedValue.metadata.create_all(database.engine, tables=[SharedValue.__table__])  # type: ignore[list-item]
        _embedded[url] = database
    return _embedded[url]
