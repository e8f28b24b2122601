"""The staff's pages over HTTP: the item list and its filters, the compose form's round trip
and its refusals beside the field, the live preview partial (the channels, the Weibo count,
the findings), the review actions by role, masking, and another department's editor refused.

Real application on a migrated SQLite store with one user of each role (tests/console/
conftest.py), driven by TestClient; the browser flow is in tests/browser/test_staff_flow.py.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.weibo_text import LIMIT_UNITS, units
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import Database
from publisher.models import Item, ItemStatus, Revision
from publisher.services.items import create_item
from tests.console.support import signed_in
from tests.support import (
    enable_every_channel_offline,
    item_fields,
)

ZHANG = "441900195203150012"  # a valid 身份证号 (GB 11643 check character right)


@pytest.fixture
def publisher_env(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """All four channels enabled, at an address nothing listens on: previews are built
    locally and deliveries are recorded (`dispatched`), never sent."""
    enable_every_channel_offline(monkeypatch)
    reset_settings()
    return get_settings()


def form_data(csrf: str, **overrides: Any) -> dict[str, Any]:
    """A valid compose form of 社管局 (social welfare), with `overrides`."""
    data: dict[str, Any] = {
        "csrf_token": csrf,
        "title": "关于2026年冬季供暖补贴发放的公告",
        "short_title": "冬季供暖补贴发放",
        "summary": "今冬供暖补贴按月发放。符合条件的家庭请按时申领。",
        "body": "## 补贴标准\n\n每户每月**200元**。\n\n- 低保家庭\n- 特困人员",
        "body_format": "markdown",
        "domain": "welfare",
        "department": "sgj",
        "doc_number": "松湖社〔2026〕12号",
        "formed_on": (date.today() - timedelta(days=2)).isoformat(),
        "keywords": "补贴，供暖",
        "cover_image": "",
        "push_mode": "none",
        "push_tags": "",
    }
    data.update(overrides)
    return data


def new_item(settings: Settings, database: Database, **overrides: Any) -> int:
    with database.session() as session:
        return create_item(session, settings, item_fields(**overrides), actor="editor1").id


def text_of(page: str) -> str:
    """The page's text, tags removed, entities read (for assertions on what staff read)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def titles_listed(page: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'<a href="/console/items/\d+">([^<]+)</a>', page)]


# --- the list --------------------------------------------------------------------------------


def test_the_list_filters_by_title_index_number_state_domain_department_and_date(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    heating = new_item(publisher_env, database, title="冬季供暖补贴发放公告")
    relief = new_item(publisher_env, database, title="临时救助标准调整通知")
    new_item(
        publisher_env, database, title="春季学期招生公告", domain="education", department="jyj"
    )
    with database.session() as session:
        item = session.get(Item, relief)
        assert item is not None
        item.index_no = "733099896/2026-00042"
        item.status = ItemStatus.SUBMITTED

    editor, _ = signed_in(new_browser, database, "editor1")
    everything = editor.get("/console/items")
    assert everything.status_code == 200
    # 社管局's editor sees 社管局's items only, newest first, names beside codes.
    assert titles_listed(everything.text) == ["临时救助标准调整通知", "冬季供暖补贴发放公告"]
    assert "社管局（sgj）" in everything.text and "社会救助和社会福利（welfare）" in everything.text

    assert titles_listed(editor.get("/console/items?q=供暖").text) == ["冬季供暖补贴发放公告"]
    assert titles_listed(editor.get("/console/items?q=2026-00042").text) == ["临时救助标准调整通知"]
    assert titles_listed(editor.get("/console/items?status=submitted").text) == [
        "临时救助标准调整通知"
    ]
    assert titles_listed(editor.get("/console/items?status=draft").text) == ["冬季供暖补贴发放公告"]
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    assert titles_listed(editor.get(f"/console/items?created_from={tomorrow}").text) == []
    assert len(titles_listed(editor.get(f"/console/items?created_from={yesterday}").text)) == 2
    assert titles_listed(editor.get(f"/console/items?created_to={yesterday}").text) == []
    refused = editor.get("/console/items?created_from=2026-13-45")
    assert 'aria-invalid="true"' in refused.text and "请按“年-月-日”填写日期" in refused.text

    supervisor, _ = signed_in(new_browser, database, "supervisor1")
    listed = supervisor.get("/console/items?department=jyj")
    assert titles_listed(listed.text) == ["春季学期招生公告"] and "教育局（jyj）" in listed.text
    assert titles_listed(supervisor.get("/console/items?domain=education").text) == [
        "春季学期招生公告"
    ]
    assert heating != relief


def test_a_reviewers_view_lists_the_items_waiting_for_review_first(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    waiting = new_item(publisher_env, database, title="等待审核的通知")
    new_item(publisher_env, database, title="较新的草稿")
    with database.session() as session:
        item = session.get(Item, waiting)
        assert item is not None
        item.status = ItemStatus.SUBMITTED
    reviewer, _ = signed_in(new_browser, database, "reviewer1")
    review = reviewer.get("/console/items?view=review")
    assert titles_listed(review.text) == ["等待审核的通知", "较新的草稿"]
    assert "等待审核" in text_of(review.text)
    assert titles_listed(reviewer.get("/console/items").text) == ["较新的草稿", "等待审核的通知"]


def test_the_list_pages_through_many_items(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    for n in range(23):
        new_item(publisher_env, database, title=f"第{n:02d}号公告")
    editor, _ = signed_in(new_browser, database, "editor1")
    first = editor.get("/console/items")
    second = editor.get("/console/items?page=2")
    assert len(titles_listed(first.text)) == 20 and len(titles_listed(second.text)) == 3
    assert titles_listed(second.text)[-1] == "第00号公告"
    assert "第 2 / 2 页" in second.text


# --- the compose form ------------------------------------------------------------------------


def test_the_compose_form_creates_an_item_and_an_edit_makes_a_revision_with_its_diff(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    editor, csrf = signed_in(new_browser, database, "editor1")
    form = editor.get("/console/items/new")
    assert form.status_code == 200
    for label in ("标题", "短标题", "摘要", "正文", "领域", "部门", "文号", "成文日期", "主题词"):
        assert f">{label}" in form.text, label
    assert 'hx-trigger="load, input changed delay:600ms' in form.text
    assert 'aria-controls="f-body"' in form.text  # the toolbar acts on the body

    created = editor.post("/console/items/new", data=form_data(csrf, channels=["website", "weibo"]))
    assert created.status_code == 303, created.text
    item_id = int(re.search(r"/console/items/(\d+)", created.headers["location"]).group(1))
    with database.session() as session:
        item = session.get(Item, item_id)
        assert item is not None and item.department_code == "sgj"
        assert item.channels == ["website", "weibo"] and item.push_tags is None
        revision = session.scalars(select(Revision).where(Revision.item_id == item_id)).one()
        assert "<strong>200元</strong>" in revision.body_html
        assert revision.keywords == ["补贴", "供暖"]
        assert revision.doc_number == "松湖社〔2026〕12号"

    page = editor.get(created.headers["location"])
    assert page.status_code == 200 and "草稿已保存" in page.text

    edit = editor.get(f"/console/items/{item_id}/edit")
    assert 'value="关于2026年冬季供暖补贴发放的公告"' in edit.text
    assert "每户每月**200元**" in html.unescape(edit.text)
    changed = form_data(
        csrf,
        title="关于2026年冬季供暖补贴发放的通知",
        body="## 补贴标准\n\n每户每月**260元**。\n\n- 低保家庭\n- 特困人员",
        channels=["website", "weibo"],
        push_mode="tags",
        push_tags="101，102",
        short_title_wechat="供暖补贴调整",
        wechat_digest="补贴标准调整为每户每月260元。",
    )
    saved = editor.post(f"/console/items/{item_id}/edit", data=changed)
    assert saved.status_code == 303, saved.text
    with database.session() as session:
        numbers = session.scalars(select(Revision.number).where(Revision.item_id == item_id))
        assert sorted(numbers) == [1, 2]
        item = session.get(Item, item_id)
        assert item is not None and item.push_tags == ["101", "102"]
    timeline = editor.get(f"/console/items/{item_id}").text
    assert "<del>关于2026年冬季供暖补贴发放的公告</del>" in timeline
    assert "<ins>关于2026年冬季供暖补贴发放的通知</ins>" in timeline
    assert "<del>每户每月**200元**。</del>" in timeline
    assert "<ins>每户每月**260元**。</ins>" in timeline
    assert "<ins>供暖补贴调整</ins>" in timeline and "微信短标题" in timeline
    assert "<ins>补贴标准调整为每户每月260元。</ins>" in timeline and "微信摘要" in timeline

    same = editor.post(f"/console/items/{item_id}/edit", data=changed)
    assert same.status_code == 303
    with database.session() as session:
        assert len(list(session.scalars(select(Revision).where(Revision.item_id == item_id)))) == 2


def test_a_refused_form_shows_each_message_beside_its_field_and_keeps_what_was_typed(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    editor, csrf = signed_in(new_browser, database, "editor1")
    future = (date.today() + timedelta(days=30)).isoformat()
    body = "正文第一段。\n\n第二段，**不能丢**。"
    refused = editor.post(
        "/console/items/new",
        data=form_data(csrf, title="  ", formed_on=future, body=body, keywords="补贴，救助"),
    )
    assert refused.status_code == 422
    page = refused.text
    title = re.search(r"<input id=\"f-title\"[^>]*>", page).group(0)
    assert 'aria-invalid="true"' in title and "f-title-error" in title
    assert re.search(r"<p class=\"error\" id=\"f-title-error\">请填写标题", page), page
    formed = re.search(r"<input id=\"f-formed_on\"[^>]*>", page).group(0)
    assert 'aria-invalid="true"' in formed and f'value="{future}"' in formed
    assert re.search(r'<p class="error" id="f-formed_on-error">成文日期不能晚于今天', page)
    body_box = re.search(r"<textarea id=\"f-body\"[^>]*>", page).group(0)
    assert "aria-invalid" not in body_box  # the body was fine
    assert html.unescape(body) in html.unescape(page)
    assert 'value="补贴，救助"' in page and "信息未保存" in page
    with database.session() as session:
        assert session.scalars(select(Item)).first() is None

    other_department = editor.post("/console/items/new", data=form_data(csrf, department="jyj"))
    assert other_department.status_code == 403 and "无权访问" in other_department.text


def test_the_channels_short_titles_and_the_wechat_digest_round_trip_through_the_form(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    editor, csrf = signed_in(new_browser, database, "editor1")
    form = editor.get("/console/items/new").text
    for label in ("微信短标题", "微博短标题", "微信摘要"):
        assert re.search(rf'<label for="f-[a-z_]+">{label}</label>', form), label
    assert "留空则自动截取到句末" in form

    typed = form_data(
        csrf,
        short_title_wechat="供暖补贴按月发放",
        short_title_weibo="冬季供暖补贴",
        wechat_digest="每户每月200元，按月发放。",
    )
    created = editor.post("/console/items/new", data=typed)
    assert created.status_code == 303, created.text
    item_id = int(re.search(r"/console/items/(\d+)", created.headers["location"]).group(1))
    with database.session() as session:
        revision = session.scalars(select(Revision).where(Revision.item_id == item_id)).one()
        assert revision.short_titles == {"wechat": "供暖补贴按月发放", "weibo": "冬季供暖补贴"}
        assert revision.wechat_digest == "每户每月200元，按月发放。"

    edit = editor.get(f"/console/items/{item_id}/edit").text
    assert 'value="供暖补贴按月发放"' in edit and 'value="冬季供暖补贴"' in edit
    assert ">每户每月200元，按月发放。</textarea>" in edit
    # The item page's preview: WeChat's own title and the editor's digest, not marked automatic.
    card = re.search(
        r'<div class="wechat-card">(.*?)</div>', editor.get(f"/console/items/{item_id}").text, re.S
    )
    assert card and "供暖补贴按月发放" in card.group(1)
    assert "每户每月200元，按月发放。" in card.group(1) and "自动截取" not in card.group(1)

    emptied = {**typed, "short_title_weibo": "", "wechat_digest": ""}
    assert editor.post(f"/console/items/{item_id}/edit", data=emptied).status_code == 303
    with database.session() as session:
        latest = session.scalars(
            select(Revision).where(Revision.item_id == item_id).order_by(Revision.number.desc())
        ).first()
        assert latest is not None and latest.number == 2
        assert latest.short_titles == {"wechat": "供暖补贴按月发放"}
        assert latest.wechat_digest is None

    too_long = editor.post(
        f"/console/items/{item_id}/edit", data={**typed, "short_title_wechat": "长" * 33}
    )
    assert too_long.status_code == 422
    field = re.search(r"<input id=\"f-short_title_wechat\"[^>]*>", too_long.text).group(0)
    assert 'aria-invalid="true"' in field and 'value="长' in field
    assert re.search(
        r'<p class="error" id="f-short_title_wechat-error">微信短标题最多32个字', too_long.text
    )


# --- the live preview ------------------------------------------------------------------------


def weibo_status(page: str) -> str:
    found = re.search(r'<p class="weibo-text">([^<]*)</p>', page)
    assert found, page
    return html.unescape(found.group(1))


def weibo_count(page: str) -> int:
    found = re.search(r"微博字数：(\d+) / (\d+)", page)
    assert found, page
    assert int(found.group(2)) == LIMIT_UNITS
    return int(found.group(1))


def test_the_preview_partial_shows_every_channel_the_weibo_count_and_the_findings(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    editor, csrf = signed_in(new_browser, database, "editor1")
    body = f"经审核，张三（身份证号{ZHANG}）符合救助条件。"
    answer = editor.post("/console/items/preview", data=form_data(csrf, body=body, summary=""))
    assert answer.status_code == 200, answer.text
    page = answer.text
    for name in ("网站", "政务公开目录", "微信公众号", "微博"):
        assert f">{name}</h3>" in page, name
    assert "发布时分配" in page  # the 索引号 comes at publication
    assert "<h2>补贴标准</h2>" not in page and "张三" in page
    # WeChat: the summary left empty, its digest is cut from the body, marked, not refused.
    digest = re.search(
        r'<p class="wechat-digest">([^<]*) <span class="badge warn">自动截取</span>', page
    )
    assert digest and html.unescape(digest.group(1)).startswith("经审核，张三")
    assert "自动截取自正文" in page
    status = weibo_status(page)
    assert status.startswith("【冬季供暖补贴发放】")  # the short title
    assert weibo_count(page) == units(status)
    # The finding beside the body field, swapped in out of band; its number not in clear.
    notes = re.search(
        r'<div id="notes-body" class="notes" hx-swap-oob="true">(.*?)</div>', page, re.S
    )
    assert notes and ZHANG not in notes.group(1)
    assert "身份证号 441900" in notes.group(1) and "公开前应遮盖" in notes.group(1)
    assert "保存草稿后可一键遮盖" in page
    assert "发现 1 处个人信息" in page

    long_title = "关于" + "社会救助" * 20 + "的公告"
    longer = editor.post(
        "/console/items/preview",
        data=form_data(csrf, short_title="", title=long_title, summary="补贴说明。" * 40),
    )
    count = weibo_count(longer.text)
    assert count == units(weibo_status(longer.text)) and count <= LIMIT_UNITS
    assert count > weibo_count(page)
    # WeChat objects to the title beside the title field.
    title_notes = re.search(
        r'<div id="notes-title" class="notes" hx-swap-oob="true">(.*?)</div>', longer.text, re.S
    )
    assert title_notes and "微信" in title_notes.group(1) and "32" in title_notes.group(1)


def test_the_preview_of_an_incomplete_form_says_what_is_missing(
    database: Database, new_browser: Callable[[], TestClient]
) -> None:
    editor, csrf = signed_in(new_browser, database, "editor1")
    answer = editor.post("/console/items/preview", data=form_data(csrf, body="", domain=""))
    assert answer.status_code == 200
    assert "填写标题、正文、领域、部门和成文日期后显示预览" in answer.text


# --- review and the item page ----------------------------------------------------------------


def post(browser: TestClient, csrf: str, path: str, **data: str) -> Any:
    return browser.post(path, data={"csrf_token": csrf, **data})


def test_submit_approve_and_send_back_follow_the_roles(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    item_id = new_item(publisher_env, database)
    editor, editor_csrf = signed_in(new_browser, database, "editor1")
    first, first_csrf = signed_in(new_browser, database, "reviewer1")
    second, second_csrf = signed_in(new_browser, database, "reviewer2")
    base = f"/console/items/{item_id}"

    assert "提交审核</button>" in editor.get(base).text
    assert post(first, first_csrf, f"{base}/submit").status_code == 403  # reviewers don't submit
    assert post(editor, editor_csrf, f"{base}/submit").status_code == 303
    assert "已提交审核" in editor.get(f"{base}?done=submitted").text
    assert post(editor, editor_csrf, f"{base}/approve").status_code == 403  # editors don't approve

    page = first.get(base).text
    assert "通过初审</button>" in page and "退回修改</button>" in page
    assert post(first, first_csrf, f"{base}/approve", comment="同意").status_code == 303
    twice = post(first, first_csrf, f"{base}/approve")
    assert twice.status_code == 403  # nobody approves two stages of one revision
    assert post(second, second_csrf, f"{base}/approve").status_code == 303
    with database.session() as session:
        item = session.get(Item, item_id)
        assert item is not None and item.status == ItemStatus.APPROVED
    approved = editor.get(base).text
    assert "发布</button>" in approved and "已通过（reviewer1）" in approved
    assert "同意" in approved  # the comment in the timeline

    no_reason = post(first, first_csrf, f"{base}/send-back", comment="  ")
    assert no_reason.status_code == 422
    assert re.search(
        r'aria-invalid="true" aria-describedby="err-send_back_comment"', no_reason.text
    )
    assert 'id="err-send_back_comment"' in no_reason.text
    back = post(first, first_csrf, f"{base}/send-back", comment="请补充申领地点")
    assert back.status_code == 303
    with database.session() as session:
        item = session.get(Item, item_id)
        assert item is not None and item.status == ItemStatus.DRAFT
    assert "已退回修改：请补充申领地点" in editor.get(base).text

    supervisor, _ = signed_in(new_browser, database, "supervisor1")
    watched = supervisor.get(base)
    assert watched.status_code == 200 and "提交审核</button>" not in watched.text
    assert "通过初审</button>" not in watched.text


def test_a_submit_blocked_by_personal_data_says_so_and_the_mask_clears_it(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    item_id = new_item(
        publisher_env, database, body_html=f"<p>张三（身份证号{ZHANG}）符合救助条件。</p>"
    )
    editor, csrf = signed_in(new_browser, database, "editor1")
    base = f"/console/items/{item_id}"
    page = editor.get(base).text
    assert "发布前检查发现的问题" in page and "一键遮盖个人信息" in page

    blocked = post(editor, csrf, f"{base}/submit")
    assert blocked.status_code == 422 and 'id="err-actions"' in blocked.text
    assert "身份证号" in text_of(blocked.text)

    masked = post(editor, csrf, f"{base}/mask")
    assert masked.status_code == 303 and masked.headers["location"] == f"{base}?done=masked"
    with database.session() as session:
        latest = session.scalars(
            select(Revision).where(Revision.item_id == item_id).order_by(Revision.number.desc())
        ).first()
        assert latest is not None and latest.number == 2
        assert ZHANG not in latest.body_html and "441900" in latest.body_html
    after = editor.get(masked.headers["location"]).text
    assert "个人信息已遮盖" in after and "一键遮盖个人信息" not in after
    assert post(editor, csrf, f"{base}/submit").status_code == 303


def test_another_departments_editor_gets_the_403_page(
    publisher_env: Settings, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    item_id = new_item(publisher_env, database)
    other, csrf = signed_in(new_browser, database, "editor2")
    for path in (f"/console/items/{item_id}", f"/console/items/{item_id}/edit"):
        refused = other.get(path)
        assert refused.status_code == 403 and "无权访问" in refused.text, path
        assert "关于2026年冬季供暖补贴发放的公告" not in refused.text
    preview = other.post(f"/console/items/{item_id}/preview", data=form_data(csrf))
    assert preview.status_code == 403
    edit = other.post(f"/console/items/{item_id}/edit", data=form_data(csrf, department="jyj"))
    assert edit.status_code == 403
    assert titles_listed(other.get("/console/items").text) == []


@pytest.mark.parametrize("path", ["/console/items/999999", "/console/items/999999/edit"])
def test_an_unknown_item_is_the_404_page(
    path: str, database: Database, new_browser: Callable[[], TestClient]
) -> None:
    editor, _ = signed_in(new_browser, database, "editor1")
    answer = editor.get(path)
    assert answer.status_code == 404 and "页面不存在" in answer.text
