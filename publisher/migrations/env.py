"""Alembic environment: the URL comes from the caller (`publisher db upgrade`) or the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from publisher.config import get_settings
from publisher.db import make_engine
from publisher.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url()
engine = make_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
