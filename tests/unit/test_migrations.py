"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select

from publisher.models import Base, Department, Domain, DomainDepartment
from tests.support import fresh_postgres, migrated_sqlite


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return list(diff)


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    assert _differences(migrated_sqlite(tmp_path)) == []


def test_migrations_match_the_models_on_postgres() -> None:
    assert _differences(fresh_postgres()) == []


def test_the_seven_domains_and_their_departments_are_seeded(tmp_path: Path) -> None:
    engine = create_engine(migrated_sqlite(tmp_path))
    with engine.connect() as conn:
        domains = dict(conn.execute(select(Domain.code, Domain.catecode)).all())
        departments = set(conn.scalars(select(Department.code)))
        disaster = set(
            conn.scalars(
                select(DomainDepartment.department_code).where(
                    DomainDepartment.domain_code == "disaster"
                )
            )
        )
    engine.dispose()
    assert domains == {
        "poverty": "0901",
        "welfare": "0902",
        "education": "0903",
        "health": "0904",
        "environment": "0905",
        "disaster": "0906",
        "culture": "0907",
    }
    assert departments == {
        "sgj",
        "wjj",
        "jsj",
        "jyj",
        "hbfj",
        "sfb",
        "spypjdfj",
        "xcwtj",
        "qtgzj",
        "zwfwzx",
    }
    assert disaster == {"sfb", "wjj", "sgj", "spypjdfj"}


def test_engine_bookkeeping_moves_out_of_remote_state_and_back(tmp_path: Path) -> None:
    """0007 takes the engine's keys out of the adapter's `remote_state` into columns; its
    downgrade puts them back, and the adapter's own keys stay where they were."""
    from alembic import command
    from sqlalchemy import text

    from publisher.migrate import alembic_config, upgrade

    url = f"sqlite:///{tmp_path}/publisher.sqlite"
    upgrade(url, "0006")
    engine = create_engine(url)
    before = {
        "publish_id": "p-1",
        "in_flight": "create",
        "uncertain": True,
        "attempted_revision_id": 7,
        "attempted_website_url": "https://www.example.gov.cn/articles/item-1.html",
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (id, domain_code, department_code, status, channels, urgent,"
                " created_at, updated_at) VALUES (1, 'welfare', 'sgj', 'published', '[]', 0,"
                " '2026-12-01 00:00:00', '2026-12-01 00:00:00'), (2, 'welfare', 'sgj',"
                " 'published', '[]', 0, '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
            )
        )
        for delivery_id, state in ((1, before), (2, {"status_id": "42"})):
            conn.execute(
                text(
                    "INSERT INTO deliveries (id, item_id, channel_kind, desired_present,"
                    " remote_state, state, next_attempt_at, attempt_count,"
                    " consecutive_failures, created_at, updated_at)"
                    " VALUES (:id, :id, 'wechat', 1, :state, 'unknown', '2026-12-01 00:00:00',"
                    " 1, 0, '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
                ),
                {"id": delivery_id, "state": json.dumps(state)},
            )
    upgrade(url)
    columns = (
        "remote_state, in_flight, uncertain, incomplete, attempted_revision_id,"
        " attempted_website_url"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {columns} FROM deliveries ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [
        (
            '{"publish_id": "p-1"}',
            "create",
            1,
            0,
            7,
            "https://www.example.gov.cn/articles/item-1.html",
        ),
        ('{"status_id": "42"}', None, 0, 0, None, None),
    ]
    command.downgrade(alembic_config(url), "0006")
    with engine.connect() as conn:
        states = conn.scalars(text("SELECT remote_state FROM deliveries ORDER BY id")).all()
    engine.dispose()
    assert [json.loads(state) for state in states] == [before, {"status_id": "42"}]
