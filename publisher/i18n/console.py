"""zh-CN messages of the web console (`publisher.console`)."""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    "app.name": "政务信息多渠道发布",
}
