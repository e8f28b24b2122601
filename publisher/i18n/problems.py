"""zh-CN messages of bad input: what staff read for a `FieldProblem` and for a request
pydantic refused (FastAPI's 422), while logs and the OpenAPI schema keep the English `msg`.

A problem's message is `problem.<rule>.<field>` where one field reads its rule differently,
else `problem.<rule>`: the first of the two whose `{fields}` the problem has. They are filled
with `label` (the field's Chinese name, `field.<name>`) and the problem's `values`, the
figures the raise site carries (`limit`, `length`, `value`, …), never re-read from the
English text; `choices` (what is allowed) is added after the message. A channel's objection
starts with the channel's name. A pydantic error reads `pydantic.<type>`, filled from its
`ctx`; one raised by our own validators carries the `rule` of a problem in its `ctx`.

`tests/unit/test_problem_messages.py` walks every rule raised in the code base and checks it
has a message its raise site can fill.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from publisher.errors import FieldProblem
from publisher.i18n.deliveries import channel_name
from publisher.i18n.fill import fill

MESSAGES: dict[str, str] = {
    # --- what staff call the fields -----------------------------------------------------------
    "field.title": "标题",
    "field.note": "备注",
    "field.short_title": "短标题",
    "field.short_titles": "渠道短标题",
    "field.short_titles.wechat": "微信短标题",
    "field.short_titles.weibo": "微博短标题",
    "field.wechat_digest": "微信摘要",
    "field.body_html": "正文",
    "field.body_markdown": "正文（Markdown）",
    "field.summary": "摘要",
    "field.keywords": "关键词",
    "field.domain": "领域",
    "field.department": "部门",
    "field.departments": "部门",
    "field.doc_number": "文号",
    "field.formed_on": "成文日期",
    "field.cover_image": "封面图片",
    "field.channels": "发布渠道",
    "field.channel": "渠道",
    "field.push": "推送标签",
    "field.urgent": "紧急发布",
    "field.author": "作者",
    "field.website_url": "网站文章链接",
    "field.file": "图片文件",
    "field.content_type": "文件类型",
    "field.role": "角色",
    "field.name": "名称",
    "field.password": "密码",
    "field.expires_days": "有效天数",
    "field.user": "用户",
    "field.as": "操作身份（--as）",
    "field.label": "令牌名称",
    "field.reason": "理由",
    "field.comment": "意见",
    "field.kind": "类型",
    "field.access_token": "访问令牌",
    "field.code": "代码",
    "field.catecode": "目录分类号",
    "field.active": "启用状态",
    "field.review_stages": "审核环节",
    "field.required_metadata": "必填信息",
    "field.policy": "处理策略",
    "field.words": "敏感词",
    "field.word": "敏感词",
    "field.remote_id": "渠道上的编号",
    "field.url": "网址",
    "field.item": "信息编号",
    "field.item_id": "信息编号",
    "field.token_id": "令牌编号",
    "field.delivery_id": "投递编号",
    "field.state": "状态",
    "field.limit": "每页条数",
    "field.offset": "起始位置",
    "field.day": "日期",
    "field.since": "开始时间",
    "field.until": "结束时间",
    "field.action": "操作",
    "field.actor": "操作人",
    "field.body": "请求内容",
    "field.indexed": "{label}（第{n}项）",
    # --- the rules of our own checks ----------------------------------------------------------
    "problem.on_channel": "{channel}：{message}",
    "problem.choices": "；可选：{choices}",
    "problem.fallback": "{label}不符合要求（{message}）",
    "problem.required": "请填写{label}",
    "problem.required.body_html": "请填写正文（HTML 或 Markdown 二选一）",
    "problem.required.departments": "请至少指定一个部门",
    "problem.required.user": "请用 --user 指定用户，或用 --role 指定角色（二选一）",
    "problem.required.words": "请至少给出一个词",
    "problem.required.comment": "退回须写明原因",
    "problem.required.name": "名称须为1至{limit}个字",
    "problem.required.website_url": "微博须附网站文章链接，网站页面尚未生成",
    "problem.required.department": "请指定部门（部门代码，如 sgj）",
    "problem.required.domain": "请选择领域（领域代码，如 welfare）",
    "problem.known": "{label}“{value}”不存在",
    "problem.known.domain": "领域“{value}”不存在或已停用",
    "problem.known.department": "部门“{value}”不存在或已停用",
    "problem.known.channels": "渠道“{value}”不存在",
    "problem.known.as": "没有名为“{value}”的用户",
    "problem.known.short_titles": "“{value}”没有单独的短标题（网站和目录显示完整标题）",
    "problem.known.required_metadata": "“{value}”不是可设为必填的信息字段",
    "problem.unique": "{label}“{value}”已存在",
    "problem.unique.review_stages": "各审核环节的名称不能重复",
    "problem.format": "{label}的格式不正确",
    "problem.format.name": "用户名须为1至32个字母、数字、“.”“_”或“-”，不含空格",
    "problem.format.code": "代码只能由小写字母、数字、“-”或“_”组成",
    "problem.format.catecode": "目录分类号须为4位数字（如 0908）",
    "problem.format.keywords": "关键词不能为空，每个最多{limit}个字",
    "problem.format.words": "{label}须为一行可见文字",
    "problem.reserved": "“{value}”是系统保留的名称",
    "problem.not_allowed": "只有编辑和审核人隶属于部门，{role}不能指定部门",
    "problem.min_length": "{label}至少{limit}个字符",
    "problem.max_length": "{label}最多{limit}个字",
    "problem.max_length.password": "密码最多{limit}个字符",
    "problem.max_length.keywords": "每个关键词最多{limit}个字",
    "problem.max_length.push": "每个推送标签最多{limit}个字符",
    "problem.max_length.channels": "每个渠道代码最多{limit}个字符",
    "problem.max_length.short_titles.wechat": (
        "微信短标题最多{limit}个字（微信标题的上限），当前{length}个字"
    ),
    "problem.max_length.wechat_digest": (
        "微信摘要最多{limit}个字，当前{length}个字；留空则自动截取摘要到句末"
    ),
    "problem.max_units.short_titles.weibo": (
        "微博短标题最多{limit}个字（汉字计1个，英文字母和数字计半个），当前{length}个字"
    ),
    "problem.max_items": "{label}最多{limit}项",
    "problem.max_bytes": "{label}不能超过{size}",
    "problem.max_depth": "{label}的元素嵌套超过{limit}层，请简化排版",
    "problem.render_time": "{label}排版过于复杂，{seconds}秒内未能处理完，请缩短或简化",
    "problem.foreign_content": "{label}不能包含<{tag}>（SVG、MathML 本来也会被删除）",
    "problem.characters": "{label}不能包含控制字符或双向文字控制符（{codepoint}）",
    "problem.exclusive": "正文请只填 HTML 或 Markdown 其中一种",
    "problem.not_empty": "{label}去掉脚本和标签后没有内容",
    "problem.url": "{label}不是有效的网址",
    "problem.url.cover_image": (
        "封面图片须为已上传的图片（/media/…）或不超过1000个字符的 http(s) 网址"
    ),
    "problem.url.website_url": "网站文章链接无效：{url}",
    "problem.responsible": "部门“{department}”不负责“{domain}”领域",
    "problem.not_future": "{label}不能晚于今天（{today}）",
    "problem.enabled": "没有可发布的已启用渠道",
    "problem.enabled.channels": "渠道“{value}”未启用：{reason}",
    "problem.enabled.user": "用户“{value}”已停用",
    "problem.needs_website": "{channels}链接到网站文章，请同时选择网站（website）",
    "problem.range": "{label}须为{min}至{max}",
    "problem.name": "每个审核环节须有1至{limit}个字的名称",
    "problem.token_channel": (
        "{value}的凭据来自环境变量而不是令牌：请修改后重启，"
        "再执行 publisher channels resume {value}"
    ),
    "problem.max_pixels": "图片像素过多（最多{limit}像素）",
    "problem.image": "请上传 JPEG、PNG、GIF 或 WebP 图片",
    "problem.image.decode": "图片无法解码，文件可能不完整",
    "problem.unicode": "文本须为有效的 Unicode（不能有单独的代理字符）",
    # --- what a channel would refuse (preflight) ----------------------------------------------
    "problem.max_32_chars": (
        "{label}最多{limit}个字，当前{length}个字，请填写不超过{limit}个字的短标题"
    ),
    "problem.max_16_chars": "{label}最多{limit}个字，当前{length}个字",
    "problem.max_128_chars": "{label}最多{limit}个字，当前{length}个字",
    "problem.under_20000_chars": "{label}须少于{limit}字，当前{length}字",
    "problem.under_1mb": "{label}须小于{size}，请精简正文或改用附件",
    "problem.safe_domain": "链接 {url} 不在微博应用的安全域名（{domains}）内",
    "problem.max_units": "标题与链接合计超过{limit}字，标题只能保留不足{min_chars}个字",
    # --- what the pre-publish checks find ---------------------------------------------------
    "problem.id_number": "{label}第{start}–{end}字有身份证号 {masked}：{detail}。{remedy}",
    "problem.mobile": "{label}第{start}–{end}字有手机号 {masked}：{detail}。{remedy}",
    "problem.bank_card": "{label}第{start}–{end}字有银行卡号 {masked}：{detail}。{remedy}",
    "problem.sensitive_word": "{label}第{start}–{end}字{detail}",
    "problem.missing_metadata": "{detail}",
    "problem.finding_remedy": "请修改，或一键遮盖个人信息，或由本部门审核人说明理由后放行",
    # --- pydantic's own checks of a request (by error type, filled from its ctx) ------------
    "pydantic.fallback": "{label}的值无效",
    "pydantic.missing": "缺少{label}",
    "pydantic.extra_forbidden": "不认识的字段“{name}”",
    "pydantic.string_type": "{label}须为文本",
    "pydantic.string_too_short": "{label}至少{min_length}个字符",
    "pydantic.string_too_long": "{label}最多{max_length}个字符",
    "pydantic.string_pattern_mismatch": "{label}的格式不正确",
    "pydantic.string_unicode": "{label}须为有效的 Unicode 文本",
    "pydantic.int_type": "{label}须为整数",
    "pydantic.int_parsing": "{label}须为整数",
    "pydantic.int_from_float": "{label}须为整数，不能有小数",
    "pydantic.float_type": "{label}须为数字",
    "pydantic.float_parsing": "{label}须为数字",
    "pydantic.bool_type": "{label}须为 true 或 false",
    "pydantic.bool_parsing": "{label}须为 true 或 false",
    "pydantic.list_type": "{label}须为列表",
    "pydantic.dict_type": "{label}须为对象",
    "pydantic.model_type": "{label}须为 JSON 对象",
    "pydantic.model_attributes_type": "{label}须为 JSON 对象",
    "pydantic.too_short": "{label}至少{min_length}项",
    "pydantic.too_long": "{label}最多{max_length}项",
    "pydantic.greater_than": "{label}须大于{gt}",
    "pydantic.greater_than_equal": "{label}须不小于{ge}",
    "pydantic.less_than": "{label}须小于{lt}",
    "pydantic.less_than_equal": "{label}须不大于{le}",
    "pydantic.date_type": "{label}须为日期（YYYY-MM-DD）",
    "pydantic.date_parsing": "{label}须为日期，格式 YYYY-MM-DD",
    "pydantic.date_from_datetime_parsing": "{label}须为日期，格式 YYYY-MM-DD",
    "pydantic.date_from_datetime_inexact": "{label}须为日期，不能带时刻",
    "pydantic.datetime_type": "{label}须为时间（ISO 8601）",
    "pydantic.datetime_parsing": "{label}须为时间，格式 ISO 8601（如 2026-12-02T11:30:00+08:00）",
    "pydantic.datetime_from_date_parsing": (
        "{label}须为时间，格式 ISO 8601（如 2026-12-02T11:30:00+08:00）"
    ),
    "pydantic.timezone_aware": "{label}须带时区（如 +08:00）",
    "pydantic.enum": "{label}须为以下之一：{expected}",
    "pydantic.literal_error": "{label}须为以下之一：{expected}",
    "pydantic.json_invalid": "请求内容不是有效的 JSON",
    "pydantic.json_type": "请求内容须为 JSON",
    "pydantic.value_error": "{label}的值无效",
    "pydantic.url_parsing": "{label}不是有效的网址",
    "pydantic.url_type": "{label}须为网址",
    "pydantic.none_required": "{label}须为空",
}

_INDEXED = re.compile(r"^(?P<name>\w+)\[(?P<index>\d+)\]$")
# Where a request's part is named in a pydantic `loc`, not the field itself.
_LOC_ROOTS = frozenset({"body", "query", "path", "header", "cookie"})


def _say(key: str, /, **values: Any) -> str:
    return fill(MESSAGES, key, **values)


def field_label(name: str) -> str:
    """What staff call the field `name` (`words[2]`: the third of the words); the name
    itself for a field the catalogue does not know."""
    indexed = _INDEXED.match(name)
    if indexed:
        label = field_label(indexed["name"])
        return _say("field.indexed", label=label, n=int(indexed["index"]) + 1)
    return MESSAGES.get(f"field.{name}", name)


def zh(problem: FieldProblem) -> str:
    """The Chinese message of `problem`: its rule's message, filled with the field's label
    and the problem's values (then what is allowed, if it says), after the channel that
    objects. Never fails: a rule the catalogue cannot fill reads the English message."""
    label = field_label(problem.field)
    values = {"label": label, "remedy": _say("problem.finding_remedy"), **problem.values}
    if isinstance(values.get("limit"), int):
        values.setdefault("size", _size(values["limit"]))
    base = _INDEXED.sub(r"\g<name>", problem.field)
    keys = [f"problem.{problem.rule}.{base}", f"problem.{problem.rule}"]
    if problem.values.get("case"):
        keys.insert(0, f"problem.{problem.rule}.{problem.values['case']}")
    text = _filled(keys, values)
    if text is None:
        text = _say("problem.fallback", label=label, message=problem.message)
    elif problem.values.get("choices"):
        text += _say("problem.choices", choices=_shown(problem.values["choices"]))
    if problem.channel:
        text = _say("problem.on_channel", channel=channel_name(problem.channel), message=text)
    return text


def zh_pydantic(error: Mapping[str, Any]) -> str:
    """The Chinese message of one of pydantic's validation errors (FastAPI's 422 entries:
    `type`, `loc`, `ctx`), by its type and filled from its ctx."""
    parts = [p for p in error.get("loc") or () if not (isinstance(p, str) and p in _LOC_ROOTS)]
    name = _loc_name(parts)
    context = dict(error.get("ctx") or {})
    kind = str(error.get("type", ""))
    if kind == "value_error" and isinstance(context.get("rule"), str):
        return zh(
            FieldProblem(name or "body", context["rule"], str(error.get("msg")), None, context)
        )
    label = field_label(name) if name else _say("field.body")
    values = {**context, "label": label, "name": name or ""}
    if "expected" in values:
        values["expected"] = str(values["expected"]).replace(" or ", ", ").replace("'", "")
    text = _filled([f"pydantic.{kind}"], values)
    return text if text is not None else _say("pydantic.fallback", label=label)


def rule_templates(rule: str, field: str) -> list[str]:
    """The catalogue keys `zh` may read for `rule` of `field`, most specific first (the
    test of every rule raised uses it)."""
    base = _INDEXED.sub(r"\g<name>", field)
    return [k for k in (f"problem.{rule}.{base}", f"problem.{rule}") if k in MESSAGES]


def template_fields(key: str) -> set[str]:
    """The `{fields}` the message `key` needs."""
    return {name for _, name, _, _ in string.Formatter().parse(MESSAGES[key]) if name}


def _loc_name(parts: list[Any]) -> str:
    if not parts:
        return ""
    if isinstance(parts[-1], int) and len(parts) > 1:
        return f"{parts[-2]}[{parts[-1]}]"
    return str(parts[-1])


def _filled(keys: Iterable[str], values: Mapping[str, Any]) -> str | None:
    """The first message of `keys` in the catalogue whose fields `values` all have."""
    for key in keys:
        if key in MESSAGES and template_fields(key) <= set(values):
            return _say(key, **{k: _shown(v) for k, v in values.items()})
    return None


def _size(limit: int) -> str:
    """A byte count as staff write it: `1MB`, `512KB`, else in bytes."""
    for unit, name in ((1_000_000, "MB"), (1 << 20, "MB"), (1000, "KB"), (1 << 10, "KB")):
        if limit >= unit and limit % unit == 0:
            return f"{limit // unit}{name}"
    return f"{limit}字节"


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return "、".join(str(v) for v in value)
    return str(value)


__all__ = ["MESSAGES", "field_label", "rule_templates", "template_fields", "zh", "zh_pydantic"]
