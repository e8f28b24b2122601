"""Demo data for `make run`: one realistic item per disclosure domain, from the right
department, each taken through review before it publishes.

Demo users (token-only, no password: `publisher --as NAME` acts as them) write and review
the items: `demo-editor` writes and submits, `demo-reviewer-1` approves the first stage and
`demo-reviewer-2` the second. The disaster notice is urgent: it goes out on the urgent path
with one approval, published by `demo-reviewer-1`, and stays flagged for its review
afterwards (`publisher --as demo-reviewer-2 items approve ID` completes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from publisher.auth import Principal
from publisher.config import Settings
from publisher.models import Item, Role
from publisher.services import review
from publisher.services.item_fields import today_local
from publisher.services.items import ItemFields, create_item, publish_item
from publisher.services.users import create_user, find_user

DEMO_ITEMS: list[dict[str, Any]] = [
    {
        "domain": "poverty",
        "department": "sgj",
        "days_ago": 6,
        "title": "松山湖2026年对口帮扶产业项目资金安排情况公示",
        "summary": "公示本年度对口帮扶地区产业项目的资金安排、实施单位和预期效益。",
        "doc_number": "松管社〔2026〕31号",
        "keywords": ["脱贫攻坚", "帮扶资金"],
        "body": "## 资金安排\n\n本年度共安排对口帮扶产业项目资金 1,260 万元，用于茶叶加工、"
        "冷链物流和乡村旅游三个项目。\n\n## 监督方式\n\n公示期为 7 个工作日。"
        "如有异议，请向社管局反映。",
    },
    {
        "domain": "welfare",
        "department": "sgj",
        "days_ago": 3,
        "title": "2026年第三季度城乡低保和特困人员救助供养金发放情况",
        "summary": "第三季度共发放低保金和特困供养金，覆盖全部在册对象。",
        "doc_number": "松管社〔2026〕35号",
        "keywords": ["低保", "特困供养"],
        "body": "第三季度全区发放城乡低保金 86.4 万元、特困人员救助供养金 21.7 万元，"
        "均已按月足额打卡发放。\n\n| 项目 | 户数 | 金额（万元） |\n| --- | --- | --- |\n"
        "| 城乡低保 | 142 | 86.4 |\n| 特困供养 | 23 | 21.7 |",
    },
    {
        "domain": "education",
        "department": "jyj",
        "days_ago": 2,
        "title": "松山湖2027年秋季公办小学一年级招生工作方案",
        "summary": "明确招生对象、积分入学办法、报名时间和咨询方式。",
        "doc_number": "松管教〔2026〕18号",
        "keywords": ["招生", "积分入学"],
        "body": "## 招生对象\n\n2021年8月31日前出生、户籍或父母一方在松山湖工作的适龄儿童。\n\n"
        "## 报名时间\n\n网上报名时间为2027年5月10日至5月20日。",
    },
    {
        "domain": "health",
        "department": "wjj",
        "days_ago": 8,
        "title": "关于开展65岁及以上老年人免费健康体检的通告",
        "summary": "辖区65岁及以上常住老年人可在社区卫生服务中心免费体检。",
        "doc_number": None,
        "keywords": ["老年人", "健康体检"],
        "body": "辖区内65岁及以上常住老年人，可携带身份证到就近社区卫生服务中心免费体检，"
        "项目包括血常规、肝肾功能、心电图和腹部B超。",
    },
    {
        "domain": "environment",
        "department": "hbfj",
        "days_ago": 4,
        "title": "2026年10月松山湖空气质量和地表水水质状况",
        "summary": "10月空气质量优良天数比例为96.8%，松山湖水质保持Ⅲ类。",
        "doc_number": None,
        "keywords": ["空气质量", "水质"],
        "body": "10月份空气质量优良天数30天，优良率96.8%；PM2.5平均浓度为19微克/立方米。"
        "松山湖湖心断面水质为Ⅲ类，达到功能区目标。",
    },
    {
        "domain": "disaster",
        "department": "sfb",
        "days_ago": 1,
        "urgent": True,
        "title": "关于做好2026年冬季森林防火和低温冰冻防御工作的通知",
        "summary": "部署冬季森林防火、低温冰冻防御和应急值守工作。",
        "doc_number": "松三防〔2026〕9号",
        "keywords": ["森林防火", "应急"],
        "body": "各单位要落实24小时应急值守，加强林区巡查，严禁野外用火。"
        "遇寒潮天气时，及时开放避寒场所并做好困难群众救助。",
    },
    {
        "domain": "culture",
        "department": "xcwtj",
        "days_ago": 5,
        "title": "松山湖2026年公共文化场馆免费开放服务信息",
        "summary": "图书馆、文化馆和体育中心的免费开放时间与服务项目。",
        "doc_number": None,
        "keywords": ["公共文化", "免费开放"],
        "body": "松山湖图书馆每周二至周日9:00—21:00免费开放；文化馆每周举办公益培训；"
        "体育中心游泳馆对老年人和残疾人免费开放。",
    },
]


DEMO_EDITOR = "demo-editor"
DEMO_REVIEWERS = ("demo-reviewer-1", "demo-reviewer-2")


def demo_user(session: Session, name: str, role: Role, departments: Sequence[str]) -> Principal:
    """The demo user `name` (made on first use, token-only), as the principal acting."""
    user = find_user(session, name) or create_user(
        session, name=name, role=role, departments=departments, actor="demo"
    )
    codes = tuple(d.code for d in user.departments)
    return Principal(user.role, codes, user.name, user.id, name=user.name)


def load_demo(session: Session, settings: Settings, *, enabled_kinds: list[str]) -> list[int]:
    """Create the demo items, take each through review and publish it, once: an existing
    store is left as it is. The demo users act."""
    if session.scalar(select(func.count(Item.id))):
        return []
    today = today_local(settings)
    departments = sorted({spec["department"] for spec in DEMO_ITEMS})
    editor = demo_user(session, DEMO_EDITOR, Role.EDITOR, departments)
    reviewers = [demo_user(session, name, Role.REVIEWER, departments) for name in DEMO_REVIEWERS]
    ids = []
    for spec in DEMO_ITEMS:
        fields = ItemFields(
            title=spec["title"],
            summary=spec["summary"],
            body_markdown=spec["body"],
            domain=spec["domain"],
            department=spec["department"],
            doc_number=spec["doc_number"],
            keywords=list(spec["keywords"]),
            formed_on=today - timedelta(days=spec["days_ago"]),
            push=[] if spec["domain"] in ("health", "disaster") else None,
            urgent=spec.get("urgent", False),
        )
        item = create_item(session, settings, fields, actor=editor.actor, who=editor)
        review.submit_item(session, item.id, editor)
        # The urgent notice goes out with its first stage; the others with every stage.
        stages = 1 if spec.get("urgent") else len(item.domain.review_stages)
        for reviewer in reviewers[:stages]:
            review.approve_item(session, item.id, reviewer, "同意发布")
        publisher = reviewers[0] if spec.get("urgent") else editor
        publish_item(
            session,
            settings,
            item.id,
            actor=publisher.actor,
            enabled_kinds=enabled_kinds,
            who=publisher,
        )
        ids.append(item.id)
    return ids
