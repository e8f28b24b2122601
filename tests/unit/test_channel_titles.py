"""Per-channel short titles and the WeChat digest (issue 14, item 2) through the REST API and
the CLI: validation naming `short_titles.wechat` and its rule, the round trip, what an edit
keeps, the content hash, and the preview's digest (the editor's, or the summary cut at a
sentence end) — real app, real services, migrated SQLite; nothing is sent to a channel.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from channels import wechat_render
from channels.weibo_text import TITLE_MAX_UNITS, units
from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.models import Item, Revision
from publisher.services.content import content_hash
from publisher.services.items import latest_revision
from tests.support import (
    LONG_SUMMARY,
    enable_every_channel_offline,
    item_json,
    user_with_token,
)

ADMIN_TOKEN = "pub_admin-token-of-the-channel-title-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """All four channels enabled at an address nothing listens on: previews are built
    locally, nothing is sent."""
    enable_every_channel_offline(monkeypatch)
    reset_settings()
    user_with_token(get_database(), "admin", name="admin", token=ADMIN_TOKEN)
    return get_settings()


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/items", json=item_json(**overrides), headers=ADMIN)
    assert resp.status_code == 201, resp.text
    view: dict[str, Any] = resp.json()
    return view


def patch(client: TestClient, item_id: int, **fields: Any) -> dict[str, Any]:
    resp = client.patch(f"/api/v1/items/{item_id}", json=fields, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    view: dict[str, Any] = resp.json()
    return view


def revision(client: TestClient, item_id: int) -> dict[str, Any]:
    resp = client.get(f"/api/v1/items/{item_id}", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    found: dict[str, Any] = resp.json()["revision"]
    return found


def rendered(client: TestClient, item_id: int) -> dict[str, dict[str, Any]]:
    resp = client.get(f"/api/v1/items/{item_id}/preview", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return {entry["channel"]: entry for entry in resp.json()["channels"]}


def test_short_titles_and_the_digest_round_trip_and_an_edit_changes_only_what_it_gives(
    client: TestClient,
) -> None:
    view = create(
        client,
        short_titles={"wechat": " 供暖补贴发放 ", "weibo": "冬季供暖补贴按月发放"},
        wechat_digest="每户每月200元，按月发放。",
    )
    first = revision(client, view["id"])
    assert first["short_titles"] == {"wechat": "供暖补贴发放", "weibo": "冬季供暖补贴按月发放"}
    assert first["wechat_digest"] == "每户每月200元，按月发放。"

    patch(client, view["id"], short_titles={"weibo": ""})  # "" clears Weibo's only
    second = revision(client, view["id"])
    assert second["number"] == 2
    assert second["short_titles"] == {"wechat": "供暖补贴发放"}
    assert second["wechat_digest"] == "每户每月200元，按月发放。"

    patch(client, view["id"], summary="改了摘要")  # fields not given are kept
    assert revision(client, view["id"])["short_titles"] == {"wechat": "供暖补贴发放"}

    patch(client, view["id"], wechat_digest="")
    cleared = revision(client, view["id"])
    assert cleared["wechat_digest"] is None and cleared["number"] == 4


def test_a_changed_digest_or_short_title_is_a_new_revision_and_an_unchanged_one_is_not(
    client: TestClient,
) -> None:
    view = create(client, wechat_digest="第一版摘要。")
    hashes = [revision(client, view["id"])["content_hash"]]
    for change in (
        {"wechat_digest": "第二版摘要。"},
        {"short_titles": {"wechat": "供暖补贴"}},
        {"short_titles": {"weibo": "微博的短标题"}},
    ):
        patch(client, view["id"], **change)
        hashes.append(revision(client, view["id"])["content_hash"])
    assert len(set(hashes)) == 4, "each change is an edit the channels must receive"

    again = client.patch(
        f"/api/v1/items/{view['id']}",
        json={"wechat_digest": "第二版摘要。", "short_titles": {"wechat": "供暖补贴"}},
        headers=ADMIN,
    )
    assert again.status_code == 200
    assert revision(client, view["id"])["number"] == 4, "the same values make no revision"


def test_an_item_without_them_keeps_the_hash_it_had_before_they_existed(
    client: TestClient, settings: Settings
) -> None:
    """Revisions stored before 0012 have neither field: their hash (and the approvals bound to
    it) must not change, so an item without them hashes what it hashed before."""
    view = create(client, short_title="供暖补贴发放")
    with get_database(settings).session() as session:
        rev: Revision = latest_revision(session, view["id"])
        item = session.get(Item, view["id"])
        assert item is not None
        before = {
            "title": rev.title,
            "short_title": rev.short_title,
            "summary": rev.summary,
            "body_html": rev.body_html,
            "keywords": rev.keywords,
            "doc_number": rev.doc_number,
            "formed_on": rev.formed_on,
            "cover_image": rev.cover_image,
            "domain": item.domain_code,
            "department": item.department_code,
        }
        assert rev.short_titles == {} and rev.wechat_digest is None
        assert rev.content_hash == content_hash(before)


@pytest.mark.parametrize(
    ("fields", "field", "rule", "zh"),
    [
        (
            {"short_titles": {"wechat": "长" * 33}},
            "short_titles.wechat",
            "max_length",
            "微信短标题最多32个字（微信标题的上限），当前33个字",
        ),
        (
            {"short_titles": {"weibo": "长" * (TITLE_MAX_UNITS + 1)}},
            "short_titles.weibo",
            "max_units",
            f"微博短标题最多{TITLE_MAX_UNITS}个字（汉字计1个，英文字母和数字计半个），"
            f"当前{TITLE_MAX_UNITS + 1}个字",
        ),
        (
            {"short_titles": {"website": "网站不用短标题"}},
            "short_titles",
            "known",
            "“website”没有单独的短标题（网站和目录显示完整标题）；可选：wechat、weibo",
        ),
        (
            {"short_titles": {"wechat": "供暖\u202e补贴"}},
            "short_titles.wechat",
            "characters",
            "微信短标题不能包含控制字符或双向文字控制符（U+202E）",
        ),
        (
            {"wechat_digest": "摘" * 129},
            "wechat_digest",
            "max_length",
            "微信摘要最多128个字，当前129个字；留空则自动截取摘要到句末",
        ),
    ],
)
def test_a_bad_short_title_or_digest_is_refused_naming_the_field_and_the_rule(
    client: TestClient, fields: dict[str, Any], field: str, rule: str, zh: str
) -> None:
    created = client.post("/api/v1/items", json=item_json(**fields), headers=ADMIN)
    assert created.status_code == 422, created.text
    detail = created.json()["detail"]
    assert [(d["loc"], d["type"], d["msg_zh"]) for d in detail] == [(["body", field], rule, zh)]

    view = create(client)
    edited = client.patch(f"/api/v1/items/{view['id']}", json=fields, headers=ADMIN)
    assert edited.status_code == 422, edited.text
    assert [(d["loc"][-1], d["type"]) for d in edited.json()["detail"]] == [(field, rule)]
    assert revision(client, view["id"])["number"] == 1, "the refused edit is not stored"


def test_the_limits_themselves_are_accepted(client: TestClient) -> None:
    weibo = "a" * (2 * TITLE_MAX_UNITS)  # ASCII counts half: exactly the limit
    assert units(weibo) == TITLE_MAX_UNITS
    view = create(
        client,
        short_titles={"wechat": "长" * wechat_render.TITLE_MAX, "weibo": weibo},
        wechat_digest="摘" * wechat_render.DIGEST_MAX,
    )
    assert revision(client, view["id"])["short_titles"]["weibo"] == weibo


def test_short_titles_must_be_an_object_of_texts(client: TestClient) -> None:
    for bad in (["wechat"], {"wechat": 3}):
        resp = client.post("/api/v1/items", json=item_json(short_titles=bad), headers=ADMIN)
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"][0]["loc"][:2] == ["body", "short_titles"]


def test_each_channel_shows_its_own_short_title_over_the_shared_one(client: TestClient) -> None:
    view = create(client, short_title="通用的短标题", short_titles={"weibo": "微博自己的短标题"})
    shown = rendered(client, view["id"])
    assert shown["wechat"]["rendered"]["title"] == "通用的短标题"
    assert shown["weibo"]["rendered"]["status"].startswith("【微博自己的短标题】")
    assert shown["website"]["rendered"]["body"]["title"] == "关于2026年冬季供暖补贴发放的公告"

    patch(client, view["id"], short_titles={"wechat": "微信自己的短标题"})
    assert rendered(client, view["id"])["wechat"]["rendered"]["title"] == "微信自己的短标题"


def test_the_preview_shows_the_digest_used_and_whether_it_was_cut(client: TestClient) -> None:
    view = create(client, summary=LONG_SUMMARY)
    wechat = rendered(client, view["id"])["wechat"]
    shown = wechat["rendered"]
    # The summary is longer than WeChat's 128: cut after the last sentence that fits.
    expected = LONG_SUMMARY[: LONG_SUMMARY.index("。", 30) + 1]
    assert len(LONG_SUMMARY) > 128 and len(expected) <= 128
    assert (shown["digest"], shown["digest_source"]) == (expected, "summary")
    assert shown["digest_automatic"] is True and shown["digest_cut"] is True
    assert shown["limits"]["digest_chars"] == {"used": len(expected), "max": 128}
    assert wechat["problems"] == [], "a long summary is cut, never refused"

    patch(client, view["id"], wechat_digest="编辑自己写的摘要。")
    shown = rendered(client, view["id"])["wechat"]["rendered"]
    assert (shown["digest"], shown["digest_automatic"], shown["digest_cut"]) == (
        "编辑自己写的摘要。",
        False,
        False,
    )

    patch(client, view["id"], wechat_digest="", summary="")  # neither: the body's text
    shown = rendered(client, view["id"])["wechat"]["rendered"]
    assert (shown["digest"], shown["digest_source"]) == ("补贴标准为每户每月200元。", "body")


def test_the_cli_sets_and_clears_the_short_titles_and_the_digest(settings: Settings) -> None:
    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    created = run(
        "items", "create", "--title", "关于开展2026年义诊活动的通知", "--domain", "health",
        "--department", "wjj", "--formed-on", "2026-01-05", "--body-html", "<p>义诊。</p>",
        "--short-title-wechat", "义诊活动通知", "--short-title-weibo", "周六义诊",
        "--wechat-digest", "每周六上午义诊。",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    with get_database(settings).session() as session:
        rev = latest_revision(session, 1)
        assert rev.short_titles == {"wechat": "义诊活动通知", "weibo": "周六义诊"}
        assert rev.wechat_digest == "每周六上午义诊。"
    shown = run("items", "show", "1").output
    for label, value in (("微信短标题", "义诊活动通知"), ("微博短标题", "周六义诊")):
        assert any(line.split() == [label, value] for line in shown.splitlines()), shown
    assert any(line.split() == ["微信摘要", "每周六上午义诊。"] for line in shown.splitlines())

    edited = run("items", "edit", "1", "--short-title-weibo", "", "--wechat-digest", "")
    assert edited.exit_code == 0, edited.output
    with get_database(settings).session() as session:
        rev = latest_revision(session, 1)
        assert (rev.number, rev.short_titles, rev.wechat_digest) == (
            2,
            {"wechat": "义诊活动通知"},
            None,
        )

    refused = CliRunner().invoke(cli, ["items", "edit", "1", "--short-title-wechat", "长" * 33])
    assert refused.exit_code == 2
    assert "微信短标题最多32个字" in refused.output and "short_titles.wechat" in refused.output


def test_personal_data_in_a_short_title_or_the_digest_is_found_and_masked(
    client: TestClient,
) -> None:
    view = create(
        client,
        short_titles={"weibo": "请致电13812345678"},
        wechat_digest="申领人张三，身份证号441900195203150012。",
    )
    resp = client.get(f"/api/v1/items/{view['id']}/preview", headers=ADMIN)
    found = {(f["field"], f["kind"]) for f in resp.json()["findings"]}
    assert {("short_titles.weibo", "mobile"), ("wechat_digest", "id_number")} <= found

    masked = client.post(f"/api/v1/items/{view['id']}/mask", headers=ADMIN)
    assert masked.status_code == 200, masked.text
    rev = revision(client, view["id"])
    assert rev["short_titles"] == {"weibo": "请致电138****5678"}
    assert rev["wechat_digest"] == "申领人张三，身份证号441900********0012。"
