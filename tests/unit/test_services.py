"""Items, revisions, the 索引号 allocator and backoff, on the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from publisher.config import Settings
from publisher.db import Database
from publisher.delivery.claims import backoff_seconds
from publisher.errors import InvalidInput
from publisher.index_numbers import allocate_index_no
from publisher.models import Delivery, Item, Revision
from publisher.services.items import ItemFields, create_item, edit_item, publish_item, retract_item
from tests.support import (
    fresh_postgres,
    item_fields,
    migrated_sqlite,
    publish_reviewed,
    reviewer,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, database_url=migrated_sqlite(tmp_path))


@pytest.fixture
def db(settings: Settings) -> Database:
    database = Database(settings.resolved_database_url())
    yield database
    database.dispose()


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"title": ""}, "title", "required"),
        ({"title": "   "}, "title", "required"),
        ({"title": "长" * 201}, "title", "max_length"),
        ({"domain": "space"}, "domain", "known"),
        ({"department": "nasa"}, "department", "known"),
        ({"department": "jyj"}, "department", "responsible"),
        ({"formed_on": date.today() + timedelta(days=3)}, "formed_on", "not_future"),
        ({"body_html": "x" * 1_000_001}, "body_html", "max_bytes"),
        ({"body_html": None}, "body_html", "required"),
        ({"channels": ["fax"]}, "channels", "known"),
        ({"body_html": "<script>alert(1)</script>"}, "body_html", "not_empty"),
        ({"short_title": "短" * 65}, "short_title", "max_length"),
        ({"doc_number": "号" * 65}, "doc_number", "max_length"),
        ({"cover_image": "javascript:alert(1)"}, "cover_image", "url"),
        ({"cover_image": "file:///etc/passwd"}, "cover_image", "url"),
    ],
)
def test_bad_input_names_field_and_rule_and_stores_nothing(
    db: Database, settings: Settings, overrides: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(InvalidInput) as caught, db.session() as session:
        create_item(session, settings, item_fields(**overrides), actor="t")
    assert (field, rule) in [(p.field, p.rule) for p in caught.value.problems]
    with db.session() as session:
        assert session.scalar(select(func.count(Item.id))) == 0
        assert session.scalar(select(func.count(Revision.id))) == 0


def test_html_is_sanitised_and_markdown_rendered(db: Database, settings: Settings) -> None:
    dirty = (
        '<p onclick="steal()">正文<script>alert(1)</script>'
        '<a href="javascript:alert(2)">链接</a><img src="x.png" onerror="boom()"></p>'
    )
    with db.session() as session:
        item = create_item(session, settings, item_fields(body_html=dirty), actor="t")
        rev = session.scalars(select(Revision).where(Revision.item_id == item.id)).one()
    assert "script" not in rev.body_html and "alert" not in rev.body_html
    assert "onclick" not in rev.body_html and "onerror" not in rev.body_html
    assert "javascript:" not in rev.body_html
    assert "正文" in rev.body_html and '<img src="x.png">' in rev.body_html
    with db.session() as session:
        item = create_item(
            session,
            settings,
            item_fields(body_html=None, body_markdown="## 标题\n\n**加粗**"),
            actor="t",
        )
        rev = session.scalars(select(Revision).where(Revision.item_id == item.id)).one()
    assert rev.body_html == "<h2>标题</h2>\n<p><strong>加粗</strong></p>"


def test_edit_makes_a_new_revision_only_when_content_changes(
    db: Database, settings: Settings
) -> None:
    with db.session() as session:
        item_id = create_item(session, settings, item_fields(), actor="t").id
    with db.session() as session:
        assert (
            edit_item(session, settings, item_id, ItemFields(summary="冬季供暖补贴发放"), actor="t")
            is None
        )
        rev2 = edit_item(
            session, settings, item_id, ItemFields(summary="更正：每户每月220元"), actor="t"
        )
    assert rev2 is not None and rev2.number == 2
    with db.session() as session:
        hashes = session.scalars(
            select(Revision.content_hash)
            .where(Revision.item_id == item_id)
            .order_by(Revision.number)
        ).all()
    assert len(hashes) == 2 and hashes[0] != hashes[1] and all(len(h) == 64 for h in hashes)


def test_publish_edit_retract_change_desired_state_and_enqueue_after_commit(
    db: Database, settings: Settings, dispatched: list[tuple[int, str, float]]
) -> None:
    with db.session() as session:
        item_id = create_item(session, settings, item_fields(), actor="t").id
    with db.session() as session:
        publish_reviewed(session, settings, item_id, enabled_kinds=["website", "catalogue"])
        assert dispatched == []  # nothing leaves before the commit
    with db.session() as session:
        item = session.get(Item, item_id)
        deliveries = session.scalars(select(Delivery).where(Delivery.item_id == item_id)).all()
    assert item is not None and item.index_no is not None
    assert item.index_no.startswith("733099896/") and item.index_no.endswith("-00001")
    assert sorted(d.channel_kind for d in deliveries) == ["catalogue", "website"]
    assert [kind for _, kind, _ in dispatched] == ["website"]  # the catalogue waits for its page

    dispatched.clear()
    with db.session() as session:
        rev = edit_item(session, settings, item_id, ItemFields(title="新标题"), actor="t")
        publish_reviewed(session, settings, item_id, enabled_kinds=["website", "catalogue"])
    with db.session() as session:
        desired = set(
            session.scalars(select(Delivery.desired_revision_id).where(Delivery.item_id == item_id))
        )
    assert rev is not None and desired == {rev.id} and [k for _, k, _ in dispatched] == ["website"]

    dispatched.clear()
    with pytest.raises(RuntimeError), db.session() as session:
        retract_item(session, item_id, actor="t")
        raise RuntimeError("rolled back")
    assert dispatched == []  # a rolled-back transaction sends nothing
    with db.session() as session:
        retract_item(session, item_id, actor="t")
    with db.session() as session:
        present = set(
            session.scalars(select(Delivery.desired_present).where(Delivery.item_id == item_id))
        )
    assert present == {False} and len(dispatched) == 2


def _allocate_concurrently(url: str, workers: int, each: int) -> list[str]:
    got: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run() -> None:
        database = Database(url)
        try:
            for _ in range(each):
                with database.session() as session:
                    index_no = allocate_index_no(session, "733099896", 2026)
                with lock:
                    got.append(index_no)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return got


def test_index_numbers_are_unique_under_concurrency_on_postgres() -> None:
    got = _allocate_concurrently(fresh_postgres(), workers=8, each=15)
    assert len(got) == len(set(got)) == 120
    assert sorted(got)[0] == "733099896/2026-00001"
    assert sorted(got)[-1] == "733099896/2026-00120"


def test_index_numbers_are_unique_under_concurrency_on_sqlite(tmp_path: Path) -> None:
    got = _allocate_concurrently(migrated_sqlite(tmp_path), workers=4, each=10)
    assert sorted(got) == [f"733099896/2026-{n:05d}" for n in range(1, 41)]


@pytest.mark.timeout(60)  # a counter locked until commit would make `other` wait forever
def test_on_postgres_a_rollback_after_allocation_leaves_a_gap_never_a_reuse() -> None:
    database = Database(fresh_postgres())
    try:
        with pytest.raises(RuntimeError), database.session() as session:
            first = allocate_index_no(session, "733099896", 2026)
            # Committed apart already: another transaction takes the next number at once,
            # rather than waiting for this one to end (it would wait forever here).
            with database.session() as other:
                second = allocate_index_no(other, "733099896", 2026)
            raise RuntimeError("publish failed after allocation")
        with database.session() as session:
            third = allocate_index_no(session, "733099896", 2026)
    finally:
        database.dispose()
    assert (first, second, third) == (
        "733099896/2026-00001",
        "733099896/2026-00002",
        "733099896/2026-00003",
    )


def test_index_numbers_are_per_year_and_never_reused(db: Database) -> None:
    with db.session() as session:
        a = allocate_index_no(session, "733099896", 2026)
    with pytest.raises(RuntimeError), db.session() as session:
        allocate_index_no(session, "733099896", 2026)
        raise RuntimeError("publish failed after allocation")
    with db.session() as session:
        b = allocate_index_no(session, "733099896", 2026)
        c = allocate_index_no(session, "733099896", 2027)
    assert (a, b, c) == ("733099896/2026-00001", "733099896/2026-00002", "733099896/2027-00001")


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    first = [backoff_seconds(1, 2, 600, rng) for _ in range(200)]
    assert all(1 <= d <= 2 for d in first) and len(set(first)) > 100
    fifth = [backoff_seconds(5, 2, 600, rng) for _ in range(200)]
    assert all(16 <= d <= 32 for d in fifth)
    assert all(300 <= backoff_seconds(30, 2, 600, rng) <= 600 for _ in range(200))


def test_publishing_to_channels_that_link_to_the_website_needs_the_website(
    db: Database, settings: Settings, dispatched: list[tuple[int, str, float]]
) -> None:
    with db.session() as session:
        item_id = create_item(session, settings, item_fields(channels=["catalogue"]), actor="t").id
    with pytest.raises(InvalidInput) as refused, db.session() as session:
        publish_item(session, settings, item_id, actor="t", enabled_kinds=["website"])
    assert [(p.field, p.rule) for p in refused.value.problems] == [("channels", "needs_website")]
    with db.session() as session:
        assert session.scalar(select(func.count(Delivery.id))) == 0
        assert session.get(Item, item_id).index_no is None  # type: ignore[union-attr]


def test_channel_changes_on_a_published_item_reach_the_deliveries(
    db: Database, settings: Settings, dispatched: list[tuple[int, str, float]]
) -> None:
    with db.session() as session:
        item_id = create_item(session, settings, item_fields(), actor="t").id
    with db.session() as session:
        publish_reviewed(session, settings, item_id, enabled_kinds=["website", "catalogue"])

    def wanted() -> dict[str, bool]:
        with db.session() as session:
            rows = session.execute(
                select(Delivery.channel_kind, Delivery.desired_present).where(
                    Delivery.item_id == item_id
                )
            )
            return dict(rows.all())

    with db.session() as session:  # drop the catalogue without a content change
        decider = reviewer(session, "sgj", 1)  # after approval, channels are a reviewer's call
        assert (
            edit_item(
                session, settings, item_id, ItemFields(channels=["website"]), actor="t", who=decider
            )
            is None
        )
    assert wanted() == {"website": True, "catalogue": False}
    with db.session() as session:  # a later edit does not bring it back
        edit_item(session, settings, item_id, ItemFields(summary="更新摘要"), actor="t")
    assert wanted() == {"website": True, "catalogue": False}
    with db.session() as session:  # adding a channel creates its delivery
        edit_item(
            session,
            settings,
            item_id,
            ItemFields(channels=["website", "catalogue"]),
            actor="t",
            who=reviewer(session, "sgj", 1),
        )
    assert wanted() == {"website": True, "catalogue": True}
