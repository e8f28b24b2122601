"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

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
