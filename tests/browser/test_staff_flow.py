"""The staff's flow in a real browser on `publisher up --demo`: an editor composes an item,
watches the per-channel previews follow the typing (the Weibo count among them), sees the
personal data in the body flagged beside it, masks it and submits; two reviewers approve;
it is published; the timeline's links open the item on the sandbox website and catalogue;
an editor of another department gets the 403 page. Each main page passes the axe scan and is
saved as a screenshot (`compose.png` the compose form with its previews).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, expect

from channels.weibo_text import LIMIT_UNITS, units
from tests.browser.support import (
    PageErrors,
    add_user,
    axe_check,
    check_page_errors,
    login,
    screenshot,
)
from tests.browser.system import RunningSystem

ZHANG = "441900195203150012"  # a valid 身份证号 (GB 11643 check character right)
LIVE_WAIT_MS = 90_000  # the workers take the deliveries through the sandboxes


@contextmanager
def signed_in_page(
    browser: Browser, system: RunningSystem, name: str, password: str
) -> Iterator[Page]:
    """A page of another person (a context of its own), failing on its console errors."""
    context = browser.new_context(
        base_url=system.base_url, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = PageErrors()
    errors.watch(page)
    try:
        login(page, name, password)
        yield page
    finally:
        context.close()
    check_page_errors(errors)


def weibo_shown(page: Page) -> tuple[str, int]:
    """The Weibo text of the preview and the count shown beside it."""
    counter = page.locator("#weibo-counter").inner_text()
    found = re.search(r"(\d+) / (\d+)", counter)
    assert found, counter
    assert int(found.group(2)) == LIMIT_UNITS
    return page.locator(".weibo-text").inner_text(), int(found.group(1))


def test_staff_compose_mask_submit_two_approvals_publish_and_find_it_on_the_channels(
    page: Page, page_errors: PageErrors, browser: Browser, publisher_system: RunningSystem
) -> None:
    system = publisher_system
    stamp = time.strftime("%H%M%S")
    title = f"关于{stamp}批次临时救助金发放的公示"
    second_reviewer = f"reviewer-b{stamp}"
    other_editor = f"editor-jyj{stamp}"
    second_password, other_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    add_user(system, second_reviewer, "reviewer", second_password, ("sgj",))
    add_user(system, other_editor, "editor", other_password, ("jyj",))
    editor = system.users["editor"]

    # The editor's list, then the compose form.
    login(page, editor.name, editor.password)
    page.goto("/console/items")
    expect(page.get_by_role("heading", level=1)).to_have_text("信息列表")
    axe_check(page)
    screenshot(page, "items")

    page.get_by_role("link", name="新建信息").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("新建信息")
    page.get_by_label("领域", exact=True).select_option("welfare")
    page.get_by_label("标题", exact=True).fill(title)
    page.get_by_label("短标题（微信、微博共用）").fill("临时救助金发放公示")
    body = page.get_by_label("正文", exact=True)
    body.fill(f"发放名单\n\n经审核，张三（身份证号{ZHANG}）符合临时救助条件，发放救助金1500元。")
    # The toolbar: the cursor at the start, 小标题 makes the first line a heading.
    body.evaluate("area => area.setSelectionRange(0, 0)")
    page.get_by_role("button", name="小标题").click()
    expect(body).to_have_value(re.compile(r"^## 发放名单"))
    page.get_by_label("摘要（内容概述、微博正文）").fill("临时救助金发放名单公示。")
    page.get_by_label("文号").fill(f"松湖社〔2026〕{int(stamp[-3:]) + 1}号")

    # The previews follow: the website page with the heading, the catalogue's 索引号 to come,
    # the Weibo text with its count, and the ID number flagged beside the body.
    preview = page.locator("#preview")
    expect(preview.locator(".website-page .article h2")).to_have_text("发放名单")
    expect(preview.locator(".catalogue-entry")).to_contain_text("发布时分配")
    expect(page.locator("#weibo-counter")).to_be_visible()
    expect(page.locator(".weibo-text")).to_contain_text("临时救助金发放名单公示")
    status, count = weibo_shown(page)
    assert count == units(status) and count <= LIMIT_UNITS
    expect(page.locator("#notes-body")).to_contain_text("身份证号")
    expect(page.locator("#notes-body")).to_contain_text("公开前应遮盖")

    longer = "临时救助金发放名单公示。名单按户列出，请相关家庭核对，如有异议请于七日内提出。"
    page.get_by_label("摘要（内容概述、微博正文）").fill(longer)
    expect(page.locator(".weibo-text")).to_contain_text("请相关家庭核对")
    status, longer_count = weibo_shown(page)
    assert longer_count == units(status) and longer_count > count  # the count follows
    # WeChat's digest left empty: the summary, marked as cut automatically; then the editor's.
    card = preview.locator(".wechat-card")
    expect(card.locator(".wechat-digest")).to_have_text(f"{longer} 自动截取")
    page.get_by_label("微信摘要", exact=True).fill("临时救助金发放名单公示，请核对。")
    expect(card.locator(".wechat-digest")).to_have_text("临时救助金发放名单公示，请核对。")
    expect(card).not_to_contain_text("自动截取")

    axe_check(page)
    screenshot(page, "compose")
    page.get_by_role("button", name="保存草稿").click()

    # The item page: the finding, masked in one click; then submitted.
    expect(page.get_by_role("status").first).to_contain_text("草稿已保存")
    item_url = page.url.split("?")[0]
    assert re.search(r"/console/items/\d+$", item_url), page.url
    expect(page.locator(".findings").first).to_contain_text("身份证号")
    page.get_by_role("button", name="一键遮盖个人信息").click()
    expect(page.get_by_text("个人信息已遮盖，生成了新版本。")).to_be_visible()
    expect(page.get_by_role("button", name="一键遮盖个人信息")).to_have_count(0)
    expect(page.locator("table.diff ins").filter(has_text="441900********0012")).to_have_count(1)
    page.get_by_role("button", name="提交审核").click()
    expect(page.get_by_text("已提交审核。")).to_be_visible()

    # Two reviewers approve, one stage each.
    reviewer = system.users["reviewer"]
    with signed_in_page(browser, system, reviewer.name, reviewer.password) as first:
        first.goto("/console/items?view=review")
        expect(first.get_by_role("link", name=title)).to_be_visible()
        first.get_by_role("link", name=title).click()
        first.get_by_label("审核意见（可选）").fill("同意公开")
        first.get_by_role("button", name="通过初审").click()
        expect(first.get_by_text("已审核通过。")).to_be_visible()
    with signed_in_page(browser, system, second_reviewer, second_password) as second:
        second.goto(item_url)
        second.get_by_role("button", name="通过终审").click()
        expect(second.get_by_text("已审核通过。")).to_be_visible()

    # Published by the editor; the deliveries go live and link to the posts.
    page.goto(item_url)
    page.get_by_role("button", name="发布", exact=True).click()
    expect(page.get_by_text("已发布，各渠道正在同步。")).to_be_visible()
    website_link = page.locator('a.post-link[data-channel="website"]')
    catalogue_link = page.locator('a.post-link[data-channel="catalogue"]')
    expect(website_link).to_be_visible(timeout=LIVE_WAIT_MS)
    expect(catalogue_link).to_be_visible(timeout=LIVE_WAIT_MS)
    expect(page.locator("#deliveries")).to_contain_text("已上线")
    axe_check(page)
    screenshot(page, "item-timeline")

    channels = page.context.new_page()  # the sandboxes' own pages, not the console's
    channels.goto(website_link.get_attribute("href") or "")
    expect(channels.get_by_text(title).first).to_be_visible()
    expect(channels.locator("body")).not_to_contain_text(ZHANG)
    channels.goto(catalogue_link.get_attribute("href") or "")
    expect(channels.get_by_text(title).first).to_be_visible()
    channels.goto(system.catalogue_listing)
    expect(channels.get_by_text(title).first).to_be_visible()
    channels.close()

    # An editor of another department cannot open the item.
    page.get_by_role("button", name="退出登录").click()
    login(page, other_editor, other_password)
    page_errors.allow(r"status of 403")  # the browser reports the 403 answer itself
    answer = page.goto(item_url)
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("无权访问")
    expect(page.locator("body")).not_to_contain_text(title)
