"""Pre-publish checks (issue 11): personal data, sensitive words and missing metadata found
with their positions, the one-step mask, a reviewer's override, and uploads without EXIF.

The detectors run on realistic text (a 低保 list); the rest runs through the real API
(TestClient) and CLI (CliRunner) on a migrated SQLite database.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from ahocorasick_rs import AhoCorasick, MatchKind
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from sqlalchemy import select

from publisher.auth import create_token
from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.models import AuditEvent, Domain, SensitiveWord, User
from publisher.services.findings import (
    DOC_NUMBER,
    find_findings,
    fold,
    personal_findings,
    personal_matches,
    word_findings,
)
from publisher.services.items import get_item, latest_revision
from publisher.services.personal_data import find_personal_data, luhn_valid
from publisher.services.readable_text import ReadableText, html_text, plain_text
from tests.support import enable_signed_channels

# --- the text of a 低保 list -------------------------------------------------------------------


def reference_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 computed the recursive way (not the weights the code uses)."""
    p = 0
    for digit in first17:
        p = (p + int(digit)) * 2 % 11
    value = (12 - p) % 11
    return "X" if value == 10 else str(value)


ZHANG = "441900195203150012"
LI = "441900196807220047"
WANG = "44190019751103002X"
ZHAO_MISTYPED = "441900198302090038"  # the check digit should be 9
CARD = "6217 0028 4100 1234 565"  # 19 digits, Luhn-valid
CREDIT_CODE = "11441900733099896X"  # 统一社会信用代码 of a 机关: not personal data

SUMMARY = f"新增低保对象张三（身份证{ZHANG}，电话13812345678）等4户，保障金按月发放。"
BODY = (
    "<p>根据《广东省最低生活保障办法》，现将2026年11月新增低保对象公示如下"
    "（索引号 733099896/2026-00012，文号 松湖社〔2026〕12号，公示期2026年11月20日至"
    "2026-11-27，统一社会信用代码 " + CREDIT_CODE + "）：</p>"
    "<table><tr><th>姓名</th><th>身份证号</th><th>联系电话</th><th>月保障金（元）</th></tr>"
    f"<tr><td>张三</td><td>{ZHANG}</td><td>13812345678</td><td>1160</td></tr>"
    f"<tr><td>李四</td><td>{LI}</td><td>139-2233-4455</td><td>1,160.00</td></tr>"
    f"<tr><td>王五</td><td>{WANG}</td><td>0769-22891234</td><td>580</td></tr>"
    f"<tr><td>赵六</td><td>{ZHAO_MISTYPED}</td><td></td><td>1160</td></tr></table>"
    f"<p>保障金统一打入社保卡账户（示例：{CARD}），本月合计13800138000元以内。"
    "监督电话：0769-22890000。</p>"
)


def test_the_sample_numbers_are_what_they_claim() -> None:
    for number in (ZHANG, LI, WANG):
        assert reference_check_char(number[:17]) == number[17]
    assert reference_check_char(ZHAO_MISTYPED[:17]) != ZHAO_MISTYPED[17]
    assert luhn_valid(CARD.replace(" ", ""))


def test_personal_data_in_a_welfare_list_is_found_at_its_exact_positions() -> None:
    found = find_personal_data(SUMMARY)
    assert [(m.kind, m.start, m.end, m.text_masked) for m in found] == [
        ("id_number", SUMMARY.index(ZHANG), SUMMARY.index(ZHANG) + 18, "441900********0012"),
        ("mobile", SUMMARY.index("138"), SUMMARY.index("138") + 11, "138****5678"),
    ]
    assert all(ZHANG not in m.text_masked for m in found)


def test_html_body_positions_are_offsets_in_the_stored_html() -> None:
    text = html_text(BODY)
    found = find_personal_data(text.text)
    spans = [(m.kind, *text.stored_span(m.start, m.end), m.text_masked) for m in found]

    def at(literal: str) -> tuple[int, int]:
        start = BODY.index(literal)
        return start, start + len(literal)

    assert spans == [
        ("id_number", *at(ZHANG), "441900********0012"),
        ("mobile", *at("13812345678"), "138****5678"),
        ("id_number", *at(LI), "441900********0047"),
        ("mobile", *at("139-2233-4455"), "139-****-4455"),
        ("id_number", *at(WANG), "441900********002X"),
        ("bank_card", *at(CARD), "6217 **** **** ***4 565"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "索引号：733099896/2026-00012",
        "成文日期 2026年11月20日，发布日期 2026-11-27，20261120",
        "本月合计13800138000元，同比增长15.5%，人均1,160.00元",
        f"赵六 {ZHAO_MISTYPED}（校验位错误，不是身份证号）",
        f"统一社会信用代码 {CREDIT_CODE}",
        "监督电话：0769-22890000，传真 0769 2289 0001",
        "6217 0028 4100 1234 566",  # one digit off: not Luhn-valid
        "12345678901234567890123",  # a long run of digits is not a card or a phone
        "文号 松湖社〔2026〕12号，第3批共4户",
        "编号 441900 19900101 1232（校验位错误）",
        "441900 19900101-1231",  # the groups of one number share one separator
        "版本 2026.11.20，时间 2026-11-20 13:45，第１３８期",
    ],
)
def test_no_false_positive(text: str) -> None:
    assert find_personal_data(text) == []


def test_full_width_digits_and_numbers_across_inline_tags_are_found() -> None:
    assert [m.kind for m in find_personal_data("电话：１３８１２３４５６７８")] == ["mobile"]
    html = "<p>电话138<b>1234</b>5678，<span>+86 139 2233 4455</span></p>"
    text = html_text(html)
    found = find_personal_data(text.text)
    assert [m.text_masked for m in found] == ["138****5678", "+86 139 **** 4455"]
    assert text.stored_span(found[0].start, found[0].end) == (
        html.index("138"),
        html.index("5678") + 4,
    )


def test_table_cells_never_run_into_one_number() -> None:
    text = html_text("<table><tr><td>1381234</td><td>5678</td></tr></table>")
    assert find_personal_data(text.text) == []


def test_masking_touches_only_text_and_urls_never_tags_or_attribute_syntax() -> None:
    html = (
        f'<p class="a13812345678"><a href="https://example.cn/13812345678">{ZHANG}</a>'
        '<img src="/media/x" alt="电话 13812345678">&#49;3812345678</p>'
    )
    text = html_text(html)
    masked = text.masked(p for m in personal_matches(text) for p in m.hidden)
    assert masked == (  # a class is not read; a URL is, and masked inside its value
        '<p class="a13812345678"><a href="https://example.cn/138****5678">441900********0012</a>'
        '<img src="/media/x" alt="电话 138****5678">&#49;38****5678</p>'
    )


# --- what an attacker tried (each once went through unfound) -------------------------------

ID_1990 = "441900199001011231"  # check character right


def found_in(name: str, text: ReadableText) -> list[tuple[str, int, int, str]]:
    return [(f.kind.value, f.start, f.end, f.text_masked) for f in personal_findings(name, text)]


def masked_text(text: ReadableText) -> str:
    return text.masked(p for m in personal_matches(text) for p in m.hidden)


@pytest.mark.parametrize("invisible", ["\u200b", "\u00ad", "\u2060", "\ufeff", "\u200c", "\u200d"])
def test_invisible_characters_inside_a_number_do_not_hide_it(invisible: str) -> None:
    id_written = f"{ID_1990[:6]}{invisible}{ID_1990[6:]}"
    mobile_written = f"138{invisible}0013{invisible}8000"
    stored = f"身份证{id_written}，电话{mobile_written}。"
    text = plain_text(stored)
    id_at, mobile_at = stored.index(id_written), stored.index(mobile_written)
    assert found_in("summary", text) == [  # offsets in the stored text, invisibles counted
        ("id_number", id_at, id_at + 19, "441900********1231"),
        ("mobile", mobile_at, mobile_at + 13, "138****8000"),
    ]
    assert masked_text(text) == (
        f"身份证441900{invisible}********1231，电话138{invisible}****{invisible}8000。"
    )


def test_an_invisible_character_written_as_an_entity_does_not_hide_a_number() -> None:
    html = f"<p>身份证{ID_1990[:6]}&#8203;{ID_1990[6:]}，电话138&ZeroWidthSpace;00138000</p>"
    text = html_text(html)
    id_at, mobile_at = html.index(ID_1990[:6]), html.index("138&")
    assert found_in("body_html", text) == [
        ("id_number", id_at, id_at + 25, "441900********1231"),
        ("mobile", mobile_at, mobile_at + 27, "138****8000"),
    ]
    assert masked_text(text) == (
        "<p>身份证441900&#8203;********1231，电话138&ZeroWidthSpace;****8000</p>"
    )


def test_invisible_characters_inside_a_sensitive_word_do_not_hide_it() -> None:
    automaton = AhoCorasick([fold("法轮功")], matchkind=MatchKind.LeftmostLongest)
    for stored in (
        "关于法\u200b轮功的通知",
        "关于法\u00ad轮\u2060功的通知",
        "<p>关于法&#8203;轮功</p>",
    ):
        text = html_text(stored) if stored.startswith("<") else plain_text(stored)
        found = word_findings("title", text, automaton)
        assert [(f.start, f.end, f.text_masked) for f in found] == [
            (stored.index("法"), stored.index("功") + 1, "法轮功")
        ], stored


@pytest.mark.parametrize("zero", [0x1D7CE, 0x1D7EC, 0x0660, 0x0966, 0xFF10])  # bold, …, full-width
def test_decimal_digits_of_any_script_are_read_as_digits(zero: int) -> None:
    def written(digits: str) -> str:
        return "".join(chr(zero + int(d)) for d in digits)

    stored = f"身份证{written(ID_1990)} 电话 {written('13800138000')}"
    text = plain_text(stored)
    id_at, mobile_at = stored.index(written(ID_1990)), stored.index(written("13800138000"))
    assert found_in("summary", text) == [
        ("id_number", id_at, id_at + 18, "441900********1231"),
        ("mobile", mobile_at, mobile_at + 11, "138****8000"),
    ]
    assert masked_text(text) == (
        f"身份证{written('441900')}********{written('1231')} 电话 {written('138')}****"
        f"{written('8000')}"
    )


@pytest.mark.parametrize(
    ("written", "masked"),
    [
        ("441900 19900101 1231", "441900 ******** 1231"),
        ("441900-19900101-1231", "441900-********-1231"),
        ("441900.19900101.1231", "441900.********.1231"),
        ("441900—19900101—1231", "441900—********—1231"),
        ("441900－19900101－1231", "441900－********－1231"),
        ("138.0013.8000", "138.****.8000"),
        ("１３８—００１３—８０００", "１３８—****—８０００"),
        ("138–0013–8000", "138–****–8000"),
        ("138——0013——8000", "138——****——8000"),
        ("138 - 0013 - 8000", "138 - **** - 8000"),
        ("+86 138.0013.8000", "+86 138.****.8000"),
    ],
)
def test_numbers_written_in_groups_with_separators_are_found(written: str, masked: str) -> None:
    stored = f"联系人：{written}（请核实）"
    text = plain_text(stored)
    found = found_in("summary", text)
    assert [(kind, start, end) for kind, start, end, _ in found] == [
        ("id_number" if len(masked) > 17 else "mobile", 4, 4 + len(written))
    ]
    assert masked_text(text) == f"联系人：{masked}（请核实）"


def test_personal_data_in_link_and_image_urls_is_found_and_masked_in_the_value() -> None:
    html = (
        f'<p><a href="https://example.cn/q?sfz={ID_1990}&amp;t=1732070400123">查询</a>'
        '<a href="https://vpn.example.cn/?m=%31%33%38%30%30%31%33%38%30%30%30">联系</a>'
        f'<a href="/pay?card={CARD.replace(" ", "")}">缴费</a>'  # a long number: not a card here
        '<img src="/media/13800138000.jpg" alt="照片"></p>'
    )
    text = html_text(html)
    id_at, escaped_at = html.index(ID_1990), html.index("%31")
    photo_at = html.index("13800138000")
    assert found_in("body_html", text) == [
        ("id_number", id_at, id_at + 18, "441900********1231"),
        ("mobile", escaped_at, escaped_at + 33, "138****8000"),
        ("mobile", photo_at, photo_at + 11, "138****8000"),
    ]
    automaton = AhoCorasick([fold("VPN")], matchkind=MatchKind.LeftmostLongest)
    assert word_findings("body_html", text, automaton) == []  # host names are not words
    masked = masked_text(text)
    assert masked == (
        '<p><a href="https://example.cn/q?sfz=441900********1231&amp;t=1732070400123">查询</a>'
        '<a href="https://vpn.example.cn/?m=%31%33%38****%38%30%30%30">联系</a>'
        f'<a href="/pay?card={CARD.replace(" ", "")}">缴费</a>'
        '<img src="/media/138****8000.jpg" alt="照片"></p>'
    )
    tags = re.compile(r"<[^>]*>")
    assert [re.sub(r'"[^"]*"', '""', t) for t in tags.findall(masked)] == [
        re.sub(r'"[^"]*"', '""', t) for t in tags.findall(html)
    ]


def test_doc_number_format() -> None:
    assert DOC_NUMBER.fullmatch("松湖社〔2026〕12号")
    for bad in (
        "松湖社[2026]12号",
        "松湖社（2026）12号",
        "松湖社〔2026〕第12号",
        "松湖社〔2026〕012号",
    ):
        assert not DOC_NUMBER.fullmatch(bad), bad


# --- through the API --------------------------------------------------------------------------


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Website and catalogue enabled (nothing is sent: the dispatcher records)."""
    enable_signed_channels(monkeypatch)
    reset_settings()
    return get_settings()


def bearer(role: str, department: str | None = None) -> dict[str, str]:
    with get_database().session() as session:
        plaintext = create_token(session, role, department, label="test")
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def people(client: TestClient) -> dict[str, dict[str, str]]:
    return {
        "admin": bearer("admin"),
        "editor": bearer("editor", "sgj"),
        "reviewer": bearer("reviewer", "sgj"),
        "other_reviewer": bearer("reviewer", "jsj"),
        "supervisor": bearer("supervisor"),
    }


def new_item(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "松山湖2026年11月新增最低生活保障对象公示",
        "summary": SUMMARY,
        "body_html": BODY,
        "domain": "welfare",
        "department": "sgj",
        "doc_number": "松湖社〔2026〕12号",
        "formed_on": (date.today() - timedelta(days=1)).isoformat(),
        "keywords": ["低保", "公示"],
        **overrides,
    }
    resp = client.post("/api/v1/items", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    view: dict[str, Any] = resp.json()
    return view


def set_domain(code: str, **values: Any) -> None:
    with get_database().session() as session:
        domain = session.get(Domain, code)
        assert domain is not None
        for name, value in values.items():
            setattr(domain, name, value)


def audit_actions(item_id: int) -> list[str]:
    with get_database().session() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.item_id == item_id)
                .order_by(AuditEvent.id)
            )
        )


def test_preview_shows_findings_with_positions_in_the_stored_text(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    view = new_item(client, people["editor"])
    stored = view["revision"]["body_html"]
    resp = client.get(f"/api/v1/items/{view['id']}/preview", headers=people["editor"])
    assert resp.status_code == 200, resp.text
    preview = resp.json()
    assert {c["channel"] for c in preview["channels"]} == {"website", "catalogue"}
    findings = preview["findings"]
    summary = [(f["kind"], f["start"], f["end"]) for f in findings if f["field"] == "summary"]
    assert summary == [
        ("id_number", SUMMARY.index(ZHANG), SUMMARY.index(ZHANG) + 18),
        ("mobile", SUMMARY.index("138"), SUMMARY.index("138") + 11),
    ]
    body = [(f["kind"], f["start"], f["end"]) for f in findings if f["field"] == "body_html"]
    numbers = [ZHANG, "13812345678", LI, "139-2233-4455", WANG, CARD]
    kinds = ["id_number", "mobile"] * 2 + ["id_number", "bank_card"]
    # Offsets in body_html as stored (GET /items/{id} returns it), not in its text.
    assert body == [
        (kind, stored.index(number), stored.index(number) + len(number))
        for kind, number in zip(kinds, numbers, strict=True)
    ]
    assert all(not f["overridden"] for f in findings)
    shown = json.dumps(findings, ensure_ascii=False)
    assert not any(number in shown for number in numbers)
    assert "441900********0012" in shown and "6217 **** **** ***4 565" in shown


def test_publish_is_refused_with_findings_then_allowed_after_a_reviewers_override(
    client: TestClient, people: dict[str, dict[str, str]], dispatched: list[Any]
) -> None:
    set_domain("welfare", review_stages=[])  # the findings alone decide here
    item_id = new_item(client, people["editor"])["id"]
    refused = client.post(f"/api/v1/items/{item_id}/publish", headers=people["editor"])
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert {(d["loc"][-1], d["type"]) for d in detail} == {
        ("summary", "id_number"),
        ("summary", "mobile"),
        ("body_html", "id_number"),
        ("body_html", "mobile"),
        ("body_html", "bank_card"),
    }
    assert all("override-findings" in d["msg"] for d in detail)
    assert ZHANG not in refused.text and "441900********0012" in refused.text
    assert dispatched == []

    for who in ("editor", "other_reviewer", "supervisor"):
        denied = client.post(
            f"/api/v1/items/{item_id}/override-findings",
            json={"reason": "已征得本人同意公示"},
            headers=people[who],
        )
        assert denied.status_code == 403, (who, denied.text)
    no_reason = client.post(
        f"/api/v1/items/{item_id}/override-findings",
        json={"reason": ""},
        headers=people["reviewer"],
    )
    assert no_reason.status_code == 422
    override = client.post(
        f"/api/v1/items/{item_id}/override-findings",
        json={"reason": "依《社会救助暂行办法》须公示，经审查同意"},
        headers=people["reviewer"],
    )
    assert override.status_code == 201, override.text
    assert len(override.json()["findings"]) == 8
    again = client.post(
        f"/api/v1/items/{item_id}/override-findings",
        json={"reason": "x"},
        headers=people["reviewer"],
    )
    assert again.status_code == 409  # nothing left to override

    preview = client.get(f"/api/v1/items/{item_id}/preview", headers=people["reviewer"]).json()
    assert preview["findings"] and all(f["overridden"] for f in preview["findings"])
    published = client.post(f"/api/v1/items/{item_id}/publish", headers=people["editor"])
    assert published.status_code == 202, published.text
    assert "item.override_findings" in audit_actions(item_id)


def test_an_edit_voids_the_override_and_a_word_added_later_blocks_again(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    set_domain("welfare", review_stages=[])
    item_id = new_item(client, people["editor"])["id"]
    reason = {"reason": "经审查同意公示"}
    url = f"/api/v1/items/{item_id}/override-findings"
    assert client.post(url, json=reason, headers=people["reviewer"]).status_code == 201
    added = client.post(
        "/api/v1/sensitive-words", json={"words": ["保障金"]}, headers=people["admin"]
    )
    assert added.status_code == 201, added.text
    refused = client.post(f"/api/v1/items/{item_id}/publish", headers=people["editor"])
    assert {d["type"] for d in refused.json()["detail"]} == {"sensitive_word"}
    assert client.post(url, json=reason, headers=people["reviewer"]).status_code == 201

    edited = client.patch(
        f"/api/v1/items/{item_id}", json={"title": "新增低保对象公示"}, headers=people["editor"]
    )
    assert edited.status_code == 200, edited.text
    refused = client.post(f"/api/v1/items/{item_id}/publish", headers=people["editor"])
    assert refused.status_code == 422
    assert "id_number" in {d["type"] for d in refused.json()["detail"]}


def test_submit_is_refused_with_findings_until_overridden(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    item_id = new_item(client, people["editor"])["id"]
    refused = client.post(f"/api/v1/items/{item_id}/submit", headers=people["editor"])
    assert refused.status_code == 422, refused.text
    assert "id_number" in {d["type"] for d in refused.json()["detail"]}
    client.post(
        f"/api/v1/items/{item_id}/override-findings",
        json={"reason": "经审查同意公示"},
        headers=people["reviewer"],
    )
    submitted = client.post(f"/api/v1/items/{item_id}/submit", headers=people["editor"])
    assert submitted.status_code == 200, submitted.text


def test_hidden_personal_data_and_words_block_submit_and_publish_and_are_masked(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    set_domain("welfare", review_stages=[])
    added = client.post(
        "/api/v1/sensitive-words", json={"words": ["法轮功"]}, headers=people["admin"]
    )
    assert added.status_code == 201, added.text
    bold = "".join(chr(0x1D7CE + int(d)) for d in "13800138000")
    summary = f"身份证441900\u200b199001011231，电话{bold}"
    body = (
        "<p>电话 138.0013.8000，身份证 441900 19900101 1231，"
        f'<a href="https://example.cn/q?sfz={ID_1990}">查询</a>，法&#8203;轮功</p>'
    )
    view = new_item(client, people["editor"], title="公示", summary=summary, body_html=body)
    item_id = view["id"]
    for action in ("submit", "publish"):
        refused = client.post(f"/api/v1/items/{item_id}/{action}", headers=people["editor"])
        assert refused.status_code == 422, refused.text
        assert sorted((d["loc"][-1], d["type"]) for d in refused.json()["detail"]) == [
            ("body_html", "id_number"),
            ("body_html", "id_number"),
            ("body_html", "mobile"),
            ("body_html", "sensitive_word"),
            ("summary", "id_number"),
            ("summary", "mobile"),
        ]
    masked = client.post(f"/api/v1/items/{item_id}/mask", headers=people["editor"])
    assert masked.status_code == 200, masked.text
    assert [f["kind"] for f in masked.json()["findings"]] == ["sensitive_word"]
    revision = masked.json()["revision"]
    assert (
        ID_1990 not in revision["body_html"] and "sfz=441900********1231" in revision["body_html"]
    )
    assert revision["summary"] == (f"身份证441900\u200b********1231，电话{bold[:3]}****{bold[7:]}")


def test_one_step_mask_makes_a_new_revision_without_personal_data(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    view = new_item(client, people["editor"], keywords=["低保", "13812345678"])
    item_id = view["id"]
    assert (
        client.post(f"/api/v1/items/{item_id}/mask", headers=people["reviewer"]).status_code == 403
    )
    resp = client.post(f"/api/v1/items/{item_id}/mask", headers=people["editor"])
    assert resp.status_code == 200, resp.text
    masked = resp.json()
    revision = masked["revision"]
    assert revision["number"] == 2
    assert masked["masked"] == {"id_number": 4, "mobile": 4, "bank_card": 1}
    assert masked["findings"] == []
    body = revision["body_html"]
    for clear in (ZHANG, LI, WANG, "13812345678", "139-2233-4455", CARD):
        assert clear not in body and clear not in revision["summary"]
    assert "441900********0012" in body and "139-****-4455" in body
    assert "6217 **** **** ***4 565" in body
    assert ZHAO_MISTYPED in body and "0769-22891234" in body  # not personal data: left alone
    tags = re.compile(r"<[^>]*>")
    assert tags.findall(body) == tags.findall(view["revision"]["body_html"])
    assert revision["summary"] == SUMMARY.replace(ZHANG, "441900********0012").replace(
        "13812345678", "138****5678"
    )
    assert revision["keywords"] == ["低保", "138****5678"]
    assert client.post(f"/api/v1/items/{item_id}/mask", headers=people["editor"]).status_code == 409
    assert {"item.edit", "item.mask"} <= set(audit_actions(item_id))


def test_sensitive_words_are_managed_at_run_time_and_matched_in_any_case(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    url = "/api/v1/sensitive-words"
    for who in ("editor", "reviewer"):
        assert client.post(url, json={"words": ["x"]}, headers=people[who]).status_code == 403
    assert client.get(url, headers=people["editor"]).status_code == 403
    added = client.post(url, json={"words": ["VPN", "翻墙", "vpn", " "]}, headers=people["admin"])
    assert added.status_code == 422  # the blank one, named
    assert added.json()["detail"][0]["loc"][-1] == "words[3]"
    added = client.post(url, json={"words": ["VPN", "翻墙", "ｖｐｎ"]}, headers=people["admin"])
    assert added.json() == {"added": ["VPN", "翻墙"], "already": ["ｖｐｎ"]}
    listed = client.get(url, headers=people["reviewer"]).json()["words"]
    assert [w["word"] for w in listed] == ["VPN", "翻墙"]

    title = "关于规范使用vpn的通知"
    item_id = new_item(client, people["editor"], title=title, summary="", body_html="<p>无</p>")[
        "id"
    ]
    findings = client.get(f"/api/v1/items/{item_id}/preview", headers=people["editor"]).json()[
        "findings"
    ]
    assert findings == [
        {
            "kind": "sensitive_word",
            "field": "title",
            "start": title.index("vpn"),
            "end": title.index("vpn") + 3,
            "text_masked": "vpn",
            "rule": "sensitive_word",
            "message": "含敏感词“vpn”，请修改或由审查人员确认",
            "overridden": False,
        }
    ]
    assert client.delete(f"{url}/Vpn", headers=people["reviewer"]).status_code == 403
    assert client.delete(f"{url}/Vpn", headers=people["admin"]).json() == {"removed": "VPN"}
    assert client.delete(f"{url}/Vpn", headers=people["admin"]).status_code == 404
    preview = client.get(f"/api/v1/items/{item_id}/preview", headers=people["editor"]).json()
    assert preview["findings"] == []
    with get_database().session() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("sensitive_word.%"))
        )
        assert list(actions) == ["sensitive_word.add", "sensitive_word.remove"]


def test_thousands_of_sensitive_words_are_all_matched_in_a_long_body(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    with get_database().session() as session:
        session.add_all(SensitiveWord(word=f"禁词{i:04d}号", added_by="t") for i in range(5000))
    body = "<p>" + "松山湖最低生活保障资金按月发放。" * 6000 + "禁词4999号</p>"  # ~100k chars
    item_id = new_item(client, people["editor"], summary="", body_html=body)["id"]
    with get_database().session() as session:
        item = get_item(session, item_id)
        revision = latest_revision(session, item_id)
        found = find_findings(session, item, revision)
    # How fast it is belongs in the benchmark, not here (no timed assertions).
    assert [(f.kind, f.text_masked) for f in found] == [("sensitive_word", "禁词4999号")]
    preview = client.get(f"/api/v1/items/{item_id}/preview", headers=people["editor"])
    assert [f["text_masked"] for f in preview.json()["findings"]] == ["禁词4999号"]


def test_required_metadata_and_the_doc_number_format(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    set_domain("welfare", required_metadata=["doc_number", "keywords", "summary"])
    plain = {"summary": "", "body_html": "<p>补贴标准为每户每月200元。</p>", "keywords": []}
    missing = new_item(client, people["editor"], doc_number=None, **plain)["id"]
    findings = client.get(f"/api/v1/items/{missing}/preview", headers=people["editor"]).json()[
        "findings"
    ]
    assert [(f["kind"], f["field"], f["rule"]) for f in findings] == [
        ("missing_metadata", "doc_number", "required"),
        ("missing_metadata", "keywords", "required"),
        ("missing_metadata", "summary", "required"),
    ]
    plain.update(summary="低保补贴", keywords=["低保"])
    malformed = new_item(client, people["editor"], doc_number="松湖社[2026]12号", **plain)["id"]
    findings = client.get(f"/api/v1/items/{malformed}/preview", headers=people["editor"]).json()[
        "findings"
    ]
    assert [(f["field"], f["rule"], f["start"], f["end"]) for f in findings] == [
        ("doc_number", "doc_number_format", 0, len("松湖社[2026]12号"))
    ]
    assert "〔" in findings[0]["message"]
    good = new_item(client, people["editor"], doc_number="松湖社〔2026〕12号", **plain)["id"]
    assert (
        client.get(f"/api/v1/items/{good}/preview", headers=people["editor"]).json()["findings"]
        == []
    )


# --- uploads ------------------------------------------------------------------------------------


def photo_with_gps() -> bytes:
    """A JPEG as a phone writes it: camera, time, GPS position, and an orientation."""
    image = Image.new("RGB", (64, 32), (30, 120, 200))
    for x in range(16):
        image.putpixel((x, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    exif[ExifTags.Base.DateTimeOriginal] = "2026:11:20 09:30:00"
    exif[ExifTags.Base.Orientation] = 6  # turned 90° clockwise
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (22.0, 54.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (113.0, 53.0, 1.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"owner: Zhang San", quality=90)
    return out.getvalue()


def test_uploaded_images_lose_their_exif_and_gps(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    data = photo_with_gps()
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the photo has a position
    resp = client.post(
        "/api/v1/media",
        files={"file": ("photo.jpg", data, "image/jpeg")},
        headers=people["editor"],
    )
    assert resp.status_code == 201, resp.text
    stored = client.get(resp.json()["url"]).content
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG"
        assert dict(image.getexif()) == {}
        assert not {"exif", "xmp", "comment"} & set(image.info)
        assert image.size == (32, 64)  # the orientation went into the pixels
    assert b"Exif" not in stored and b"Zhang" not in stored and b"Phone" not in stored


# --- the CLI ------------------------------------------------------------------------------------


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def user_name(role: str, department: str) -> str:
    with get_database().session() as session:
        create_token(session, role, department)
        users = session.scalars(select(User).where(User.role == role)).all()
        return users[-1].name


def test_cli_words_override_and_mask(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    assert run("words", "add", "翻墙", "VPN").exit_code == 0
    listed = run("words", "list")
    assert "翻墙" in listed.output and "（共 2 个词）" in listed.output
    assert run("words", "remove", "vpn").output.strip() == "已删除 VPN"
    assert run("words", "remove", "vpn").exit_code == 1

    item_id = new_item(client, people["editor"])["id"]
    shown = run("items", "findings", str(item_id))
    assert "441900********0012" in shown.output and ZHANG not in shown.output
    editor = user_name("editor", "sgj")
    refused = run("--as", editor, "items", "override-findings", str(item_id), "--reason", "同意")
    assert refused.exit_code == 1
    overridden = run("items", "override-findings", str(item_id), "--reason", "经审查同意公示")
    assert overridden.exit_code == 0, overridden.output
    assert f"信息 {item_id} 第1版：已放行 8 处检查结果" in overridden.output

    masked = run("--as", editor, "items", "mask", str(item_id))
    assert masked.exit_code == 0, masked.output
    assert f"信息 {item_id}：已生成第2版，遮盖了" in masked.output
    assert "4 处身份证号" in masked.output and "1 处银行卡号" in masked.output
