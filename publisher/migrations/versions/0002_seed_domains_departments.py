"""seed the seven disclosure domains and their responsible departments (docs/protocols.md §3)

Revision ID: 0002
Revises: 0001
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DEPARTMENTS = {
    "sgj": "社管局",
    "wjj": "卫计局",
    "jsj": "建设局",
    "jyj": "教育局",
    "hbfj": "环保分局",
    "sfb": "三防办",
    "spypjdfj": "食品药品监督分局",
    "xcwtj": "宣传文体局",
    "qtgzj": "群团工作局",
    "zwfwzx": "政务服务中心",
}

DOMAINS = [
    ("poverty", "脱贫攻坚", "0901", ["sgj"]),
    ("welfare", "社会救助和社会福利", "0902", ["sgj", "wjj", "jsj"]),
    ("education", "教育", "0903", ["jyj"]),
    ("health", "基本医疗卫生", "0904", ["wjj"]),
    ("environment", "环境保护", "0905", ["hbfj"]),
    ("disaster", "灾害事故救援", "0906", ["sfb", "wjj", "sgj", "spypjdfj"]),
    ("culture", "公共文化体育", "0907", ["xcwtj", "qtgzj"]),
]


def upgrade() -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    departments = sa.table(
        "departments", sa.column("code"), sa.column("name"), sa.column("active"),
        sa.column("created_at", sa.DateTime()),
    )
    domains = sa.table(
        "domains", sa.column("code"), sa.column("name"), sa.column("catecode"),
        sa.column("active"), sa.column("created_at", sa.DateTime()),
    )
    links = sa.table("domain_departments", sa.column("domain_code"), sa.column("department_code"))
    op.bulk_insert(
        departments,
        [{"code": c, "name": n, "active": True, "created_at": now} for c, n in DEPARTMENTS.items()],
    )
    op.bulk_insert(
        domains,
        [
            {"code": c, "name": n, "catecode": k, "active": True, "created_at": now}
            for c, n, k, _ in DOMAINS
        ],
    )
    op.bulk_insert(
        links,
        [{"domain_code": c, "department_code": d} for c, _, _, deps in DOMAINS for d in deps],
    )


def downgrade() -> None:
    op.execute("DELETE FROM domain_departments")
    op.execute("DELETE FROM domains")
    op.execute("DELETE FROM departments")
