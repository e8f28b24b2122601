"""WeChat's push digests: `GET /wechat/digests`, each mass send's result per audience."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from publisher.api.routes_common import READERS, database_of, page, requires
from publisher.auth import Principal
from publisher.services.queries import Page
from publisher.services.wechat_digests import digest_views

router = APIRouter(tags=["channels"])


@router.get("/wechat/digests")
def list_wechat_digests(
    request: Request,
    day: date | None = Query(None, description="the day in Beijing (YYYY-MM-DD); all if unset"),
    paging: Page = Depends(page),
    _: Principal = Depends(requires(*READERS)),
) -> dict[str, Any]:
    """The digests, newest first: per audience, `state` sending (WeChat accepted the job),
    sent, failed, rejected (an administrator refused it under 群发保护) or unknown (the
    send's answer was lost; it is resent with the same clientmsgid), WeChat's `result`, and
    the items with their place (`article_idx`) in the message."""
    with database_of(request).session() as session:
        views = digest_views(session, day=day, paging=paging)
    return {"digests": [asdict(view) for view in views]}
