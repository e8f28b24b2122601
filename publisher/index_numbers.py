"""The 索引号 allocator: `{org_code}/{year}-{serial:05d}`, unique per organisation and year,
never reused. Its counter is advanced apart from the publish on PostgreSQL (see
`allocate_index_no`). Imports only the models."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from publisher.models import (
    IndexSerial,
)

log = logging.getLogger(__name__)


def allocate_index_no(session: Session, org_code: str, year: int) -> str:
    """The next 索引号 for the organisation and year: unique under concurrency, never handed
    out twice.

    One upsert (`INSERT … ON CONFLICT DO UPDATE … RETURNING`) creates the counter row or
    increments it. On PostgreSQL it runs in its own transaction on a separate connection and
    is committed before this returns, so the counter row is locked for one statement rather
    than until the caller's publish commits (which made concurrent first publishes queue on
    it). A caller that then rolls back leaves a gap in the serials: a number is never reused,
    but not every number ends up on an item. On SQLite it runs inside the caller's
    transaction: there is one writer at a time anyway, and a second connection would wait
    for the caller's write lock (`BEGIN IMMEDIATE`) that is only released at its commit.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        serial = _next_serial_apart(bind.engine, org_code, year)
    else:
        serial = session.execute(_next_serial(sqlite_insert, org_code, year)).scalar_one()
    return f"{org_code}/{year}-{serial:05d}"


def _next_serial_apart(engine: Engine, org_code: str, year: int) -> int:
    """The upsert in a transaction of its own (autocommit), on the counter's own pool."""
    try:
        return _upsert_serial(_counter_engine(engine), org_code, year)
    except DBAPIError as exc:
        # That pool does not ping before use (a round trip per publish): a connection cut
        # while idle fails here, and is replaced once. Had the upsert run before the cut,
        # its number is a gap, like that of a publish that rolls back.
        if not exc.connection_invalidated:
            raise
        return _upsert_serial(_counter_engine(engine), org_code, year)


def _upsert_serial(counter: Engine, org_code: str, year: int) -> int:
    with counter.connect() as conn:
        return int(conn.execute(_next_serial(pg_insert, org_code, year)).scalar_one())


def _next_serial(insert: Any, org_code: str, year: int) -> Any:
    return (
        insert(IndexSerial)
        .values(org_code=org_code, year=year, last_serial=1)
        .on_conflict_do_update(
            index_elements=["org_code", "year"],
            set_={"last_serial": IndexSerial.last_serial + 1},
        )
        .returning(IndexSerial.last_serial)
    )


# The allocator's own small pool per engine: taking its connection from the caller's pool
# could wait forever once every connection there is held by a publish waiting for a second.
_counter_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


_counter_engines_lock = threading.Lock()


def _counter_engine(engine: Engine) -> Engine:
    with _counter_engines_lock:
        counter = _counter_engines.get(engine)
        if counter is None:
            counter = create_engine(
                engine.url.render_as_string(hide_password=False),
                isolation_level="AUTOCOMMIT",
                pool_size=2,
                max_overflow=2,
            )
            _counter_engines[engine] = counter
            event.listen(engine, "engine_disposed", lambda _engine: counter.dispose())
        return counter
