"""The operator's flow in a real browser on `publisher up --demo` (issue 14): a WeChat delivery
fails (the WeChat sandbox refuses the cover's thumb with 45034), the operator finds it, reads
WeChat's own words on its page, retries it once the fault is gone and watches it go live;
then pauses Weibo and sees a new item's Weibo delivery wait. The dashboard and the delivery
page pass axe-core; screenshots go to var/screenshots (`operations.png`, `delivery.png`)."""

from __future__ import annotations

import io
import re
import secrets
import time
from typing import Any

import pytest
import requests
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.support import axe_check, login, screenshot
from tests.browser.system import RunningSystem, wait_for

LIVE_TIMEOUT_MS = 90_000  # the worker, the sweeper and WeChat's publish job, on two busy cores


class Api:
    """The REST API as one demo user (the items are made there: this flow is the operator's)."""

    def __init__(self, system: RunningSystem, user: str) -> None:
        self.base = f"{system.base_url}/api/v1"
        account = system.users[user]
        signed = requests.post(
            f"{self.base}/login",
            json={"name": account.name, "password": account.password},
            timeout=15,
        )
        assert signed.status_code == 200, signed.text
        self.headers = {"Authorization": f"Bearer {signed.json()['token']}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = requests.request(
            method, self.base + path, headers=self.headers, timeout=30, **kwargs
        )
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None


def unique_cover() -> bytes:
    """A JPEG no other item has (WeChat's thumbs are shared by identical covers)."""
    image = Image.new("RGB", (320, 180), tuple(secrets.token_bytes(3)))
    for x in range(0, 320, 8):
        image.putpixel((x, 90), tuple(secrets.token_bytes(3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def publish_urgent(apis: dict[str, Api], title: str, channels: list[str], cover: bool) -> int:
    """An urgent 灾害事故救援 item of 社管局, written and submitted by the demo editor and
    approved and published by the demo reviewer (the urgent path: one stage)."""
    editor, reviewer = apis["editor"], apis["reviewer"]
    fields: dict[str, Any] = {
        "title": title,
        "body_html": "<p>请沿线居民注意防范，听从现场指挥。</p>",
        "summary": "防汛应急通告",
        "domain": "disaster",
        "department": "sgj",
        "doc_number": "松三防〔2026〕7号",
        "formed_on": time.strftime("%Y-%m-%d"),
        "keywords": ["防汛"],
        "channels": channels,
        "urgent": True,
    }
    if cover:
        uploaded = editor.call(
            "POST", "/media", files={"file": ("cover.jpg", unique_cover(), "image/jpeg")}
        )
        fields["cover_image"] = uploaded["url"]
    item_id = int(editor.call("POST", "/items", json=fields)["id"])
    editor.call("POST", f"/items/{item_id}/submit")
    reviewer.call("POST", f"/items/{item_id}/approve", json={"comment": "同意"})
    reviewer.call("POST", f"/items/{item_id}/publish")
    return item_id


def delivery_of(admin: Api, item_id: int, kind: str) -> dict[str, Any]:
    item = admin.call("GET", f"/items/{item_id}")
    found: dict[str, Any] = next(d for d in item["deliveries"] if d["channel"] == kind)
    return found


BUSY = ("pending", "running", "retrying", "confirming", "unknown")


def wechat_is_quiet(admin: Api) -> bool:
    """No WeChat delivery in flight (the demo items published at start have settled), so an
    injected fault hits only this test's item."""
    channels = admin.call("GET", "/channels")["channels"]
    wechat = next(c for c in channels if c["kind"] == "wechat")
    return not any(wechat["deliveries"].get(state) for state in BUSY)


def wechat_settings(system: RunningSystem, **changes: Any) -> None:
    requests.post(
        f"{system.sandboxes['wechat']}/_sandbox/wechat", json=changes, timeout=5
    ).raise_for_status()


# Three waits on workers of up to 90 s each, on two busy cores: more than the default 300 s
# may pass before one of them fails with its own message.
@pytest.mark.timeout(600)
def test_an_operator_retries_a_failed_wechat_delivery_and_pauses_weibo(
    page: Page, publisher_system: RunningSystem
) -> None:
    system = publisher_system
    operator = system.users["operator"]
    # Signed in once each: the login throttle counts every sign-in of a name.
    apis = {name: Api(system, name) for name in ("editor", "reviewer", "admin")}
    admin = apis["admin"]
    wait_for(lambda: wechat_is_quiet(admin), 120, "the demo's WeChat deliveries", system.logs)
    wechat_settings(system, material_cap=0)  # 45034 for every new thumb
    try:
        item_id = publish_urgent(
            apis, "松山湖防汛应急通告（微信失败重试）", ["website", "wechat"], True
        )
        wait_for(
            lambda: delivery_of(admin, item_id, "wechat")["state"] == "failed",
            90,
            "the WeChat delivery to fail on 45034",
            system.logs,
        )
    finally:
        wechat_settings(system, material_cap=1000)
    failed = delivery_of(admin, item_id, "wechat")

    login(page, operator.name, operator.password)
    expect(page).to_have_url(re.compile(r"/console/operations$"))
    page.goto("/console/deliveries?channel=wechat&state=failed")
    page.get_by_role("link", name=f"#{failed['id']}", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"投递 #{failed['id']}")

    said = page.locator(".card.said")
    expect(said.locator('[data-said="code"]')).to_have_text("45034")
    expect(said.locator('[data-said="message"]')).to_have_text("media file count is out of limit")
    expect(page.get_by_role("heading", name="说明")).to_be_visible()
    expect(page.get_by_text("微信拒绝了该请求").first).to_be_visible()
    axe_check(page)
    screenshot(page, "delivery")

    page.get_by_role("button", name="重试", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("已重新排队")
    # The page polls the delivery while it is not settled: no reload.
    expect(page.locator('#delivery-state [data-state="live"]')).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    expect(page.locator("#delivery-attempts")).to_contain_text("成功")

    page.goto("/console/operations")
    expect(page.locator("#workers")).to_contain_text("在线", timeout=20_000)
    weibo = page.locator('section[aria-labelledby="controls-weibo"]')
    weibo.get_by_label("暂停原因（可选）").fill("测试：账号维护")
    weibo.get_by_role("button", name="暂停微博").click()
    expect(page.get_by_role("status")).to_contain_text("渠道已暂停")
    queue = page.locator('#queue [data-channel="weibo"]')
    expect(queue).to_contain_text("已暂停")

    waiting = publish_urgent(apis, "松山湖防汛应急通告（微博暂停）", ["website", "weibo"], False)
    weibo_delivery = wait_for(
        lambda: (d := delivery_of(admin, waiting, "weibo"))["wait_reason"] == "paused" and d,
        90,
        "the Weibo delivery to wait for the paused channel",
        system.logs,
    )
    assert weibo_delivery["state"] == "deferred"
    # The dashboard's queue updates by itself (htmx polling).
    expect(queue.locator('[data-state="deferred"]')).not_to_have_text("0", timeout=20_000)
    expect(queue).to_contain_text("渠道已暂停")
    axe_check(page)
    screenshot(page, "operations")

    page.goto(f"/console/deliveries/{weibo_delivery['id']}")
    expect(page.locator('#delivery-state [data-state="deferred"]')).to_be_visible()
    expect(page.locator("#delivery-state")).to_contain_text("渠道已暂停")

    page.goto("/console/operations")
    page.get_by_role("button", name="恢复微博").click()
    expect(page.get_by_role("status")).to_contain_text("渠道已恢复")
    wait_for(
        lambda: delivery_of(admin, waiting, "weibo")["state"] == "live",
        90,
        "the Weibo delivery to go out once resumed",
        system.logs,
    )
