"""The console's foundation in a browser: signing in by keyboard alone (Tab order, a visible
focus ring, Enter submits), changing the password, signing out, and the login, password and
error pages at half width (200 % zoom) and under axe-core.

The users are made for this module through the API (an admin's token), so that changing a
password leaves the demo users as the other browser tests expect them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import PageErrors, add_user, axe_check, expect_no_sideways_scroll, login
from tests.browser.system import RunningSystem

HALF_WIDTH = {"width": 640, "height": 720}  # a 1280-pixel window at 200 % zoom


@dataclass(frozen=True)
class Account:
    name: str
    password: str


def make_user(system: RunningSystem, role: str) -> Account:
    """A new user of `role` (no department: supervisor or operator)."""
    account = Account(f"basics-{role}-{secrets.token_hex(3)}", secrets.token_urlsafe(12))
    add_user(system, account.name, role, account.password)
    return account


@pytest.fixture(scope="module")
def accounts(publisher_system: RunningSystem) -> dict[str, Account]:
    return {role: make_user(publisher_system, role) for role in ("supervisor", "operator")}


def focused(page: Page) -> str:
    """The focused element, as `tag#id` or `tag[name]` or `tag:text`."""
    found: str = page.evaluate(
        """() => {
            const e = document.activeElement;
            if (!e || e === document.body) return "body";
            const tag = e.tagName.toLowerCase();
            if (e.id) return `${tag}#${e.id}`;
            if (e.name) return `${tag}[${e.name}]`;
            return `${tag}:${e.textContent.trim()}`;
        }"""
    )
    return found


def expect_focus_ring(page: Page) -> None:
    """The focused element shows the focus ring of console.css: a solid outline at least
    2 px wide, inside the window."""
    ring = page.evaluate(
        """() => {
            const e = document.activeElement, style = getComputedStyle(e);
            const box = e.getBoundingClientRect();
            return {style: style.outlineStyle, width: parseFloat(style.outlineWidth),
                    visible: box.right > 0 && box.bottom > 0 && box.left < innerWidth
                             && box.width > 0 && box.height > 0};
        }"""
    )
    where = focused(page)
    assert ring["style"] == "solid" and ring["width"] >= 2, f"{where}: no focus ring: {ring}"
    assert ring["visible"], f"{where} is focused but off screen"


def test_sign_in_by_keyboard_change_the_password_and_sign_out(
    page: Page, accounts: dict[str, Account], page_errors: PageErrors
) -> None:
    account = accounts["supervisor"]
    # A refused form (422, 401) is a failed resource to the browser: expected here.
    page_errors.allow(r"status of (401|422)")
    page.set_viewport_size(HALF_WIDTH)
    page.goto("/login")
    expect_no_sideways_scroll(page)
    axe_check(page)

    # The name field has the focus on arrival; Tab goes name → password → 登录, and back
    # before the form: the brand link, then the skip link (shown when focused).
    assert focused(page) == "input#username"
    page.keyboard.press("Tab")
    assert focused(page) == "input#password"
    expect_focus_ring(page)
    page.keyboard.press("Tab")
    assert focused(page) == "button:登录"
    expect_focus_ring(page)
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    assert focused(page) == "a:政务信息多渠道发布"
    expect_focus_ring(page)
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "a:跳到正文"
    expect_focus_ring(page)

    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page) == "input#username"
    expect_focus_ring(page)
    page.keyboard.type(account.name)
    page.keyboard.press("Tab")
    page.keyboard.type(account.password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/supervision")
    expect_no_sideways_scroll(page)

    page.get_by_role("link", name="修改密码").click()
    page.wait_for_url("**/console/password")
    expect_no_sideways_scroll(page)
    axe_check(page)

    new_password = secrets.token_urlsafe(12)
    page.get_by_label("当前密码", exact=True).fill(account.password)
    page.get_by_label("新密码", exact=True).fill(new_password)
    page.get_by_label("再次输入新密码", exact=True).fill(new_password + "x")
    page.get_by_role("button", name="修改密码").click()
    again = page.get_by_label("再次输入新密码", exact=True)
    expect(again).to_have_attribute("aria-invalid", "true")
    expect(again).to_have_accessible_description("两次输入的新密码不一致。")
    expect_no_sideways_scroll(page)
    axe_check(page)

    page.get_by_label("当前密码", exact=True).fill(account.password)
    page.get_by_label("新密码", exact=True).fill(new_password)
    again.fill(new_password)
    again.press("Enter")
    expect(page.get_by_role("status")).to_have_text("密码已修改。")
    axe_check(page)

    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url("**/login")
    # Signed out: the console sends the browser back to the login form.
    page.goto("/console/supervision")
    page.wait_for_url("**/login?next=*")

    # The old password no longer signs in; the new one does.
    page.get_by_label("用户名", exact=True).fill(account.name)
    page.get_by_label("密码", exact=True).fill(account.password)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误。")
    expect(page.get_by_label("用户名", exact=True)).to_have_value(account.name)
    expect_no_sideways_scroll(page)
    axe_check(page)
    login(page, account.name, new_password)
    page.wait_for_url("**/console/supervision")


def test_the_error_pages_read_well_and_fit_half_width(
    page: Page, accounts: dict[str, Account], page_errors: PageErrors
) -> None:
    page_errors.allow(r"status of (403|404)")
    account = accounts["operator"]
    login(page, account.name, account.password)
    page.set_viewport_size(HALF_WIDTH)

    page.goto("/console/audit")  # the supervisors' page: refused to an operator
    expect(page.get_by_role("heading", level=1)).to_have_text("403 · 无权访问")
    expect(page.get_by_role("link", name="返回首页")).to_be_visible()
    expect_no_sideways_scroll(page)
    axe_check(page)

    page.goto("/console/no-such-page")
    expect(page.get_by_role("heading", level=1)).to_have_text("404 · 页面不存在")
    expect_no_sideways_scroll(page)
    axe_check(page)
