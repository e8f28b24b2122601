"""Every problem and refusal raised in the code base reads in Chinese (publisher.i18n), and
the API's 422 entries carry it as `msg_zh` beside FastAPI's English `msg`.

The walks read the source (every `FieldProblem(…)`, channel `Problem(…)` and refusal raised),
so a new rule or refusal without a Chinese message fails here, not in front of staff.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.errors import FieldProblem
from publisher.i18n import CATALOGUE
from publisher.i18n.problems import field_label, rule_templates, template_fields, zh, zh_pydantic
from publisher.services.findings import FindingKind
from tests.support import enable_signed_channels, item_json, user_with_token

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "pub_admin-token-of-the-problem-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Calls that make a problem, and where their field, rule and values stand: (positional index
# of the field, of the rule, of the values), for calls that take values positionally.
PROBLEM_CALLS = {
    "FieldProblem": (0, 1, 4),
    "bad": (0, 1, None),  # item_fields.field_problems' helper: values as keywords
    "Problem": (1, 2, 4),  # a channel's preflight objection
    "_problem": (0, 1, None),  # the WeChat adapter's helper: values as keywords
}
# Always there when `zh` fills a message.
GIVEN = {"label", "remedy"}


@dataclass(frozen=True)
class RaiseSite:
    where: str
    field: str | None  # None: not a literal
    rule: str
    values: frozenset[str] | None  # None: not known from the source


def python_files() -> Iterator[Path]:
    for folder in ("publisher", "channels"):
        yield from (ROOT / folder).rglob("*.py")


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _values(call: ast.Call, index: int | None) -> frozenset[str] | None:
    """The names of the values a call gives, where the source says them."""
    given: ast.expr | None = next((k.value for k in call.keywords if k.arg == "values"), None)
    if given is None and index is not None and len(call.args) > index:
        given = call.args[index]
    if given is None:
        keywords = {k.arg for k in call.keywords if k.arg not in (None, "channel", "message")}
        keywords -= {"field", "rule"}
        if any(k.arg is None for k in call.keywords):
            return None  # **values
        return frozenset(k for k in keywords if k is not None)
    if isinstance(given, ast.Dict) and all(_literal(k) for k in given.keys if k is not None):
        return frozenset(_literal(k) or "" for k in given.keys if k is not None)
    return None


def raise_sites() -> list[RaiseSite]:
    sites = []
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in PROBLEM_CALLS:
                continue
            field_at, rule_at, values_at = PROBLEM_CALLS[name]
            keywords = {k.arg: k.value for k in node.keywords}
            rule_node = node.args[rule_at] if len(node.args) > rule_at else keywords.get("rule")
            field_node = node.args[field_at] if len(node.args) > field_at else keywords.get("field")
            rule = _literal(rule_node)
            if rule is None:
                continue  # passed on from a problem made elsewhere (walked there)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            sites.append(RaiseSite(where, _literal(field_node), rule, _values(node, values_at)))
    return sites


def test_every_rule_raised_in_the_code_base_has_a_chinese_message_its_site_can_fill() -> None:
    sites = raise_sites()
    assert len(sites) > 60, "the walk found too few problems: has the code changed shape?"
    rules = {site.rule for site in sites} | {kind.value for kind in FindingKind}
    missing = sorted(rule for rule in rules if f"problem.{rule}" not in CATALOGUE)
    assert not missing, f"rules with no Chinese message (problem.<rule>): {missing}"
    unknown = [site.where for site in sites if site.values is None]
    assert not unknown, f"give a problem's values as a dict literal or keywords: {unknown}"
    unfilled = []
    for site in sites:
        assert site.values is not None
        given = GIVEN | site.values | ({"size"} if "limit" in site.values else set())
        if site.field is not None and "case" not in site.values:
            keys = rule_templates(site.rule, site.field)
        else:  # the field or the case is only known at run time: one of the rule's messages
            keys = [k for k in CATALOGUE if k.startswith(f"problem.{site.rule}.")]
            keys.append(f"problem.{site.rule}")
        if not any(template_fields(key) <= given for key in keys if key in CATALOGUE):
            unfilled.append(f"{site.where}: {site.field}/{site.rule} gives {sorted(site.values)}")
    assert not unfilled, "problems whose Chinese message lacks a value:\n" + "\n".join(unfilled)


def test_every_field_named_by_a_problem_has_a_chinese_label() -> None:
    fields = {site.field for site in raise_sites() if site.field}
    unlabelled = sorted(f for f in fields if f"field.{f}" not in CATALOGUE)
    assert not unlabelled, f"fields with no Chinese label (field.<name>): {unlabelled}"


def test_every_refusal_raised_carries_its_chinese_text() -> None:
    bare = []
    found = 0
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            if isinstance(func, ast.Name) and func.id in ("Conflict", "NotFound", "Forbidden"):
                found += 1
                if not any(k.arg == "zh" for k in node.exc.keywords):
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found > 40, "the walk found too few refusals: has the code changed shape?"
    assert not bare, f"refusals raised without zh=: {bare}"


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (FieldProblem("title", "required", "title is required"), "请填写标题"),
        (
            FieldProblem("summary", "max_length", "…", values={"limit": 1000}),
            "摘要最多1000个字",
        ),
        (
            FieldProblem("role", "known", "…", values={"value": "boss", "choices": ["a", "b"]}),
            "角色“boss”不存在；可选：a、b",
        ),
        (
            FieldProblem("words[2]", "max_length", "…", values={"limit": 64}),
            "敏感词（第3项）最多64个字",
        ),
        (
            FieldProblem("title", "max_32_chars", "…", "wechat", {"limit": 32, "length": 40}),
            "微信公众号：标题最多32个字，当前40个字，请填写不超过32个字的短标题",
        ),
        (
            FieldProblem("body_html", "max_bytes", "…", "website", {"limit": 1_000_000}),
            "网站：正文不能超过1MB",
        ),
        (
            FieldProblem("file", "image", "…", values={"case": "decode"}),
            "图片无法解码，文件可能不完整",
        ),
        # A rule the catalogue cannot fill reads the English message rather than fail.
        (FieldProblem("title", "max_length", "at most 5"), "标题不符合要求（at most 5）"),
        (FieldProblem("mystery", "no_such_rule", "odd"), "mystery不符合要求（odd）"),
    ],
)
def test_zh_fills_the_rule_with_the_label_and_the_values(
    problem: FieldProblem, expected: str
) -> None:
    assert zh(problem) == expected


def test_field_labels_are_chinese_and_an_unknown_field_keeps_its_name() -> None:
    assert [field_label(f) for f in ("title", "formed_on", "cover_image", "domain")] == [
        "标题",
        "成文日期",
        "封面图片",
        "领域",
    ]
    assert field_label("no_such_field") == "no_such_field"


# --- the API's 422 ------------------------------------------------------------------------------


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    enable_signed_channels(monkeypatch)
    reset_settings()
    user_with_token(get_database(), "admin", name="admin", token=ADMIN_TOKEN)
    return get_settings()


def detail(resp: Any) -> list[dict[str, Any]]:
    assert resp.status_code == 422, resp.text
    entries: list[dict[str, Any]] = resp.json()["detail"]
    return entries


def test_a_service_problem_keeps_fastapis_shape_and_english_and_gains_msg_zh(
    client: TestClient,
) -> None:
    bad = item_json(domain="education", department="sgj", title="标题" * 101)
    entries = detail(client.post("/api/v1/items", json=bad, headers=ADMIN))
    assert entries == [
        {
            "loc": ["body", "title"],
            "msg": "title must be at most 200 characters",
            "type": "max_length",
            "msg_zh": "标题最多200个字",
        },
        {
            "loc": ["body", "department"],
            "msg": "department 'sgj' is not responsible for domain 'education'",
            "type": "responsible",
            "msg_zh": "部门“sgj 社管局”不负责“education 教育”领域",
        },
    ]


def test_pydantics_own_errors_gain_msg_zh_by_type_with_their_figures(
    client: TestClient,
) -> None:
    missing = detail(client.post("/api/v1/items", json={"body_html": "<p>x</p>"}, headers=ADMIN))
    assert {(e["loc"][-1], e["type"], e["msg_zh"]) for e in missing} == {
        ("title", "missing", "缺少标题"),
        ("domain", "missing", "缺少领域"),
        ("department", "missing", "缺少部门"),
        ("formed_on", "missing", "缺少成文日期"),
    }
    assert all(e["msg"] == "Field required" for e in missing)

    wrong = item_json(formed_on="yesterday", cover_image="x" * 2001, colour="red")
    entries = detail(client.post("/api/v1/items", json=wrong, headers=ADMIN))
    assert {(e["loc"][-1], e["type"], e["msg_zh"]) for e in entries} == {
        ("formed_on", "date_from_datetime_parsing", "成文日期须为日期，格式 YYYY-MM-DD"),
        ("cover_image", "string_too_long", "封面图片最多2000个字符"),
        ("colour", "extra_forbidden", "不认识的字段“colour”"),
    }

    paged = detail(client.get("/api/v1/deliveries?offset=2000000", headers=ADMIN))
    assert [(e["type"], e["msg_zh"]) for e in paged] == [
        ("less_than_equal", "起始位置须不大于1000000")
    ]
    named = detail(
        client.post(
            "/api/v1/departments", json={"code": "mzj", "name": "民政\u202e局"}, headers=ADMIN
        )
    )
    assert [(e["type"], e["msg_zh"]) for e in named] == [
        ("value_error", "名称不能包含控制字符或双向文字控制符（U+202E）")
    ]
    assert named[0]["msg"] == "Value error, must not contain U+202E (control or bidi override)"


def test_zh_pydantic_never_fails_on_an_error_type_it_does_not_know() -> None:
    error = {"type": "something_new", "loc": ["body", "summary"], "msg": "odd", "ctx": {}}
    assert zh_pydantic(error) == "摘要的值无效"
    assert zh_pydantic({"type": "json_invalid", "loc": ["body", 12], "msg": "x"}) == (
        "请求内容不是有效的 JSON"
    )
