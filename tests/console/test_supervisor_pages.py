"""The supervisors' pages over HTTP: the home page's counts against seeded items, the links
behind them, the audit log's filters and paging, the chain check, and who may open them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from publisher.audit import audit
from publisher.config import Settings
from publisher.db import Database
from publisher.models import AuditEvent, Delivery, DeliveryState, Item
from publisher.services import review
from publisher.services.items import create_item, retract_item
from tests.console.support import session_for, signed_in
from tests.support import approve_all, department_user, item_fields, publish_reviewed


@dataclass
class Cell:
    href: str | None = None
    text: str = ""


@dataclass
class Figures:
    """The figure cells of a page's tables: table id → row code (`data-code`; "" for the
    total row) → column (`data-state`) → the cell's link and text."""

    tables: dict[str, dict[str, dict[str, Cell]]] = field(default_factory=dict)

    def number(self, table: str, code: str, column: str) -> int:
        return int(self.tables[table][code][column].text)

    def query(self, table: str, code: str, column: str) -> dict[str, list[str]]:
        link = self.tables[table][code][column].href
        assert link is not None, f"{table} {code} {column} has no link"
        parts = urlsplit(link)
        assert parts.path == "/console/items", link
        return parse_qs(parts.query)


class FigureReader(HTMLParser):
    """Reads `Figures` out of a page: a `td` with `data-state` in a `tr` of a `table` with
    an id; a row without `data-code` (the total row) has the code ""."""

    def __init__(self) -> None:
        super().__init__()
        self.figures = Figures()
        self.table: str | None = None
        self.row: str | None = None
        self.cell: Cell | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id"):
            self.table = found["id"]
            self.figures.tables[self.table or ""] = {}
        elif tag == "tr" and self.table:
            self.row = found.get("data-code") or ""
        elif tag == "td" and self.table and self.row is not None:
            cell = Cell()
            state = found.get("data-state") or "count"
            self.figures.tables[self.table].setdefault(self.row, {})[state] = cell
            self.cell = cell
        elif tag == "a" and self.cell is not None:
            self.cell.href = found.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.cell = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.text += data.strip()


def figures_of(html: str) -> Figures:
    reader = FigureReader()
    reader.feed(html)
    return reader.figures


def _new(session: Any, settings: Settings, department: str, domain: str, title: str) -> int:
    fields = item_fields(department=department, domain=domain, title=title)
    return create_item(session, settings, fields, actor="test").id


@pytest.fixture
def seeded(publisher_env: Settings, database: Database) -> dict[str, int]:
    """Items in every state: 社管局 (sgj) two drafts (welfare), one in review (poverty), one
    published then retracted (welfare); 教育局 (jyj) one approved (education); 卫计局 (wjj)
    one published with a failed website delivery (health) and one published 40 days ago
    (welfare)."""
    settings = publisher_env
    ids: dict[str, int] = {}
    with database.session() as session:
        ids["draft1"] = _new(session, settings, "sgj", "welfare", "社管局草稿一")
        ids["draft2"] = _new(session, settings, "sgj", "welfare", "社管局草稿二")
        ids["submitted"] = _new(session, settings, "sgj", "poverty", "社管局待审")
        editor = department_user(session, "editor-sgj", "editor", "sgj")
        review.submit_item(session, ids["submitted"], editor)
        ids["approved"] = _new(session, settings, "jyj", "education", "教育局已审核")
        approve_all(session, ids["approved"])
        ids["failing"] = _new(session, settings, "wjj", "health", "卫计局投递失败")
        publish_reviewed(session, settings, ids["failing"], enabled_kinds=["website"])
        ids["old"] = _new(session, settings, "wjj", "welfare", "卫计局旧发布")
        publish_reviewed(session, settings, ids["old"], enabled_kinds=["website"])
        ids["retracted"] = _new(session, settings, "sgj", "welfare", "社管局已撤回")
        publish_reviewed(session, settings, ids["retracted"], enabled_kinds=["website"])
        retract_item(session, ids["retracted"], actor="test")
    with database.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.item_id == ids["failing"])
            .values(state=DeliveryState.FAILED)
        )
        session.execute(
            update(Item)
            .where(Item.id == ids["old"])
            .values(published_at=datetime.now(UTC) - timedelta(days=40))
        )
    return ids


def supervisor(new_browser: Any, database: Database, name: str = "supervisor1") -> TestClient:
    browser, _ = signed_in(new_browser, database, name)
    return browser


# --- the home page -------------------------------------------------------------------------------


def test_the_counts_per_department_and_domain_are_those_of_the_items(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    page = supervisor(new_browser, database).get("/console/supervision")
    assert page.status_code == 200, page.text
    figures = figures_of(page.text)

    expected_departments = {
        "sgj": {"draft": 2, "submitted": 1, "approved": 0, "published": 0, "retracted": 1},
        "jyj": {"draft": 0, "submitted": 0, "approved": 1, "published": 0, "retracted": 0},
        "wjj": {"draft": 0, "submitted": 0, "approved": 0, "published": 2, "retracted": 0},
        "jsj": {"draft": 0, "submitted": 0, "approved": 0, "published": 0, "retracted": 0},
    }
    for code, states in expected_departments.items():
        for state, n in states.items():
            assert figures.number("counts-department", code, state) == n, (code, state)
    assert figures.number("counts-department", "wjj", "failing") == 1
    assert figures.number("counts-department", "sgj", "failing") == 0
    assert figures.number("counts-department", "sgj", "total") == 4
    assert figures.number("counts-department", "", "total") == 7
    assert figures.number("counts-department", "", "draft") == 2
    assert figures.number("counts-department", "", "failing") == 1

    expected_domains = {
        "welfare": {"draft": 2, "published": 1, "retracted": 1, "failing": 0},
        "poverty": {"submitted": 1},
        "education": {"approved": 1},
        "health": {"published": 1, "failing": 1},
        "culture": {"draft": 0, "published": 0},
    }
    for code, states in expected_domains.items():
        for state, n in states.items():
            assert figures.number("counts-domain", code, state) == n, (code, state)
    assert figures.number("counts-domain", "", "total") == 7

    # First published in the last 30 days: sgj's retracted item and wjj's failing one, not
    # wjj's item of 40 days ago.
    assert figures.number("recent-department", "sgj", "count") == 1
    assert figures.number("recent-department", "wjj", "count") == 1
    assert figures.number("recent-department", "jyj", "count") == 0
    assert figures.number("recent-department", "", "count") == 2


def test_each_figure_links_to_the_item_list_filtered_to_it(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    browser = supervisor(new_browser, database)
    figures = figures_of(browser.get("/console/supervision").text)
    assert figures.query("counts-department", "sgj", "draft") == {
        "department": ["sgj"],
        "status": ["draft"],
    }
    assert figures.query("counts-department", "wjj", "failing") == {
        "department": ["wjj"],
        "status": ["failing"],
    }
    assert figures.query("counts-domain", "health", "published") == {
        "domain": ["health"],
        "status": ["published"],
    }
    assert figures.query("counts-domain", "", "retracted") == {"status": ["retracted"]}
    since = (date.today() - timedelta(days=29)).isoformat()
    assert figures.query("recent-department", "wjj", "count") in (
        {"department": ["wjj"], "published_from": [since]},
        # the page counts days in Beijing; the test's clock may be a day behind it
        {
            "department": ["wjj"],
            "published_from": [(date.today() - timedelta(days=28)).isoformat()],
        },
    )
    # The list a figure links to holds as many items as the figure says.
    for table, code, column in (
        ("counts-department", "wjj", "failing"),
        ("counts-department", "sgj", "draft"),
        ("recent-department", "wjj", "count"),
    ):
        cell = figures.tables[table][code][column]
        listed = browser.get(str(cell.href))
        assert listed.status_code == 200
        assert re.search(rf"共\s*{int(cell.text)}\s*条", listed.text), (table, code, column)


def test_departments_and_domains_show_their_chinese_names_and_the_timeliness_placeholder(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    html = supervisor(new_browser, database).get("/console/supervision").text
    for shown in ('社管局 <span class="muted">（sgj）', '教育局 <span class="muted">（jyj）'):
        assert shown in html
    assert '社会救助和社会福利 <span class="muted">（welfare）' in html
    assert '<a href="/console/supervision" aria-current="page">督查</a>' in html
    assert '<a href="/console/audit">审计日志</a>' in html
    assert '<h2 id="timeliness">时效</h2>' in html
    assert "20 个工作日" in html and "issue 15" in html


def test_an_admin_sees_the_page_and_editors_operators_reviewers_get_the_403_page(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    admin = supervisor(new_browser, database, "admin1")
    assert admin.get("/console/supervision").status_code == 200
    for name in ("editor1", "operator1", "reviewer1"):
        browser = supervisor(new_browser, database, name)
        for path in ("/console/supervision", "/console/audit"):
            refused = browser.get(path)
            assert refused.status_code == 403, (name, path)
            assert "无权访问" in refused.text


# --- the audit log -------------------------------------------------------------------------------


def rows_of(html: str) -> list[int]:
    """The ids of the audit rows a page shows, in order."""
    ids: list[int] = []

    class Rows(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            if tag == "tr" and found.get("data-id"):
                ids.append(int(found["data-id"] or 0))

    Rows().feed(html)
    return ids


def audit_ids(database: Database, *where: Any) -> list[int]:
    with database.session() as session:
        stmt = select(AuditEvent.id).where(*where).order_by(AuditEvent.id.desc())
        return list(session.scalars(stmt))


def test_the_audit_log_filters_by_actor_action_item_and_days(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    browser = supervisor(new_browser, database)
    everything = browser.get("/console/audit")
    assert everything.status_code == 200
    assert rows_of(everything.text) == audit_ids(database)[:50]

    by_actor = browser.get("/console/audit", params={"actor": "editor-sgj"})
    assert rows_of(by_actor.text) == audit_ids(database, AuditEvent.actor == "editor-sgj")
    assert rows_of(by_actor.text), "the seeded editor's submission is missing"

    publishes = browser.get("/console/audit", params={"action": "item.publish"})
    expected = audit_ids(database, AuditEvent.action == "item.publish")
    assert len(expected) == 3 and rows_of(publishes.text) == expected
    assert '发布<br><code class="muted">item.publish</code>' in publishes.text

    item = seeded["retracted"]
    about = browser.get("/console/audit", params={"item": str(item), "action": "item."})
    about_ids = rows_of(about.text)
    assert about_ids == audit_ids(
        database, AuditEvent.item_id == item, AuditEvent.action.startswith("item.")
    )
    assert f'href="/console/items/{item}"' in about.text
    assert "撤回" in about.text

    # A row moved to yesterday (Beijing) is found by yesterday's day and not by today's.
    moved = about_ids[-1]
    with database.session() as session:
        # The trail is append-only on PostgreSQL; this test's store is SQLite.
        session.execute(
            text("UPDATE audit_events SET at = :at WHERE id = :id"),
            {"at": datetime.now(UTC) - timedelta(days=1), "id": moved},
        )
    yesterday = (datetime.now(UTC) + timedelta(hours=8) - timedelta(days=1)).date().isoformat()
    on_the_day = browser.get("/console/audit", params={"from": yesterday, "to": yesterday})
    assert rows_of(on_the_day.text) == [moved]
    today = (datetime.now(UTC) + timedelta(hours=8)).date().isoformat()
    since_today = browser.get("/console/audit", params={"from": today, "item": str(item)})
    assert moved not in rows_of(since_today.text) and rows_of(since_today.text)


def test_bad_filters_are_named_beside_their_fields(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    browser = supervisor(new_browser, database)
    answer = browser.get(
        "/console/audit", params={"item": "abc", "from": "2026-13-01", "actor": "x" * 65}
    )
    assert answer.status_code == 422
    assert 'id="audit-item-error">信息编号须为正整数。' in answer.text
    assert 'id="audit-from-error">请按 年-月-日 填写日期' in answer.text
    assert 'id="audit-actor-error">最多 64 个字符。' in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert 'value="abc"' in answer.text  # what was typed is kept
    backwards = browser.get("/console/audit", params={"from": "2026-02-01", "to": "2026-01-01"})
    assert backwards.status_code == 422
    assert 'id="audit-to-error">结束日期不能早于开始日期。' in backwards.text


def test_the_audit_log_pages_keep_their_filters_and_show_details_in_beijing_time(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    with database.session() as session:
        for n in range(60):
            audit(session, "cli:paging", "test.paging", f"thing:{n}", n=n, note={"a": "乙"})
    browser = supervisor(new_browser, database)
    first = browser.get("/console/audit", params={"actor": "cli:paging"})
    ids = audit_ids(database, AuditEvent.actor == "cli:paging")
    assert rows_of(first.text) == ids[:50]
    assert "共 60 条记录" in first.text and "第 1 / 2 页" in first.text
    assert 'href="/console/audit?actor=cli%3Apaging&amp;page=2"' in first.text
    second = browser.get("/console/audit", params={"actor": "cli:paging", "page": "2"})
    assert rows_of(second.text) == ids[50:]
    assert 'href="/console/audit?actor=cli%3Apaging"' in second.text  # back to page 1
    assert "<dt>n</dt><dd>0</dd>" in second.text
    assert "<dt>note</dt><dd>{&#34;a&#34;: &#34;乙&#34;}</dd>" in second.text

    with database.session() as session:
        row = session.get(AuditEvent, ids[0])
        assert row is not None
        shown = (row.at.astimezone(UTC) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert f">{shown}</time>" in first.text
    assert browser.get("/console/audit", params={"page": "99999999999"}).status_code == 200


def test_the_chain_check_runs_on_demand_and_names_a_broken_row(
    seeded: dict[str, int], new_browser: Any, database: Database
) -> None:
    browser = new_browser()
    csrf = session_for(browser, database, "supervisor1")
    total = len(audit_ids(database))
    holds = browser.post(
        "/console/audit/verify", headers={"HX-Request": "true", "X-CSRF-Token": csrf}
    )
    assert holds.status_code == 200
    assert f"审计链完整：已核对 {total} 条记录" in holds.text
    assert "<html" not in holds.text  # the fragment htmx swaps in

    victim = audit_ids(database, AuditEvent.action == "item.submit")[0]
    with database.session() as session:
        session.execute(
            text("UPDATE audit_events SET actor = 'someone-else' WHERE id = :id"), {"id": victim}
        )
    broken = browser.post("/console/audit/verify", data={"csrf_token": csrf})
    assert broken.status_code == 200
    assert "<h1>审计日志</h1>" in broken.text  # without script: the whole page
    assert f"审计链在第 {victim} 条记录处断开" in broken.text
    assert "该记录的内容与其哈希不符" in broken.text
    assert "提交审核" in broken.text
