"""The items both runs publish: the same title, summary and body for item number `n`."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from channels.base import Publication

BODY_HTML = (
    "<p>根据《广东省临时救助办法》，现将本期城乡困难群众临时救助资金发放情况公示如下。</p>"
    "<p>救助对象共计一百二十户，发放金额合计三十六万元，已全部通过银行账户发放到位。</p>"
    "<p>公示期为七个工作日。公示期间如有异议，请致电社管局社会救助科。</p>"
)
SUMMARY = "公示本期临时救助资金发放对象、金额及审批情况。"


def title(n: int) -> str:
    return f"松山湖临时救助资金发放公示（第{n}期）"


def item_body(n: int) -> dict[str, Any]:
    """The JSON of `POST /api/v1/items` for item number `n` (a welfare notice of 社管局)."""
    return {
        "title": title(n),
        "summary": SUMMARY,
        "body_html": BODY_HTML,
        "domain": "welfare",
        "department": "sgj",
        "formed_on": date.today().isoformat(),
        "keywords": ["临时救助", "公示"],
    }


def publication(n: int, *, org_code: str, website_url: str | None) -> Publication:
    """What the baseline sends for item `n`: the same content, under ids of its own."""
    today = date.today()
    return Publication(
        item_id=n,
        revision_id=n,
        revision_number=1,
        external_id=f"baseline-{n}",
        title=title(n),
        summary=SUMMARY,
        body_html=BODY_HTML,
        domain_code="welfare",
        domain_name="社会救助和社会福利",
        catecode="0902",
        department_code="sgj",
        department_name="社管局",
        org_code=org_code,
        # Serials from 50000 up stay clear of those the store hands out (from 1).
        index_no=f"{org_code}/{today.year}-{50_000 + n:05d}",
        written_date=today,
        publish_date=today,
        content_hash=hashlib.sha256(title(n).encode()).hexdigest(),
        keywords=("临时救助", "公示"),
        website_url=website_url,
    )
