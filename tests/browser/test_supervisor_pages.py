"""The supervisors' pages in a browser, on `publisher up --demo`: a supervisor signs in and
lands on the home page, whose figures match the API's lists; opens the audit log from the
navigation, filters it, and runs the chain check. Both pages pass axe-core, show no console
errors, fit a half-width window (200 % zoom) and are saved as `supervision.png`, `audit.png`.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from playwright.sync_api import Page, expect

from tests.browser.support import (
    PageErrors,
    api_token,
    axe_check,
    fits_half_width,
    login,
    screenshot,
)
from tests.browser.system import RunningSystem

STATES = ("draft", "submitted", "approved", "published", "retracted")


def test_a_supervisor_sees_the_home_page_and_filters_the_audit_log(
    page: Page, publisher_system: RunningSystem
) -> None:
    supervisor = publisher_system.users["supervisor"]
    login(page, supervisor.name, supervisor.password)
    page.wait_for_url("**/console/supervision")
    expect(page.get_by_role("heading", level=1)).to_have_text("督查首页")
    expect(page.get_by_role("heading", name="时效")).to_be_visible()

    # The total row of the department table is the API's count of items in each state.
    token = api_token(publisher_system, supervisor.name)
    totals = page.locator("#counts-department tfoot")
    for state in STATES:
        link = totals.locator(f'td[data-state="{state}"] a')
        assert parse_qs(urlsplit(link.get_attribute("href") or "").query) == {"status": [state]}
        listed = requests.get(
            f"{publisher_system.base_url}/api/v1/items",
            params={"status": state, "limit": 1},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert listed.status_code == 200, listed.text
        assert int(link.inner_text()) == listed.json()["total"], state
    assert int(totals.locator('td[data-state="total"]').inner_text()) > 0, "no demo items?"
    sgj = page.locator('#counts-department tr[data-code="sgj"] th')
    expect(sgj).to_contain_text("社管局")
    expect(sgj).to_contain_text("sgj")

    axe_check(page)
    fits_half_width(page)
    screenshot(page, "supervision")

    page.get_by_role("navigation", name="主导航").get_by_role("link", name="审计日志").click()
    page.wait_for_url("**/console/audit")
    expect(page.get_by_role("heading", level=1)).to_have_text("审计日志")
    axe_check(page)

    page.get_by_label("操作人", exact=True).fill(supervisor.name)
    page.get_by_label("操作", exact=True).fill("auth.login")
    page.get_by_role("button", name="筛选", exact=True).click()
    page.wait_for_url("**/console/audit?*action=auth.login*")
    rows = page.locator("table.audit tbody tr")
    expect(rows.first).to_be_visible()
    for n in range(rows.count()):
        cells = rows.nth(n).locator("td")
        expect(cells.nth(2)).to_have_text(supervisor.name)
        expect(cells.nth(3)).to_contain_text("auth.login")
        expect(cells.nth(3)).to_contain_text("登录")
    # The filters are shown back as typed.
    expect(page.get_by_label("操作", exact=True)).to_have_value("auth.login")

    page.get_by_role("button", name="立即校验").click()
    expect(page.get_by_role("status")).to_contain_text("审计链完整")

    axe_check(page)
    fits_half_width(page)
    screenshot(page, "audit")


def test_a_bad_audit_filter_is_named_beside_its_field(
    page: Page, publisher_system: RunningSystem, page_errors: PageErrors
) -> None:
    supervisor = publisher_system.users["supervisor"]
    login(page, supervisor.name, supervisor.password)
    # The answer is a 422 page, which the browser reports as a failed resource.
    page_errors.allow(r"status of 422")
    page.goto("/console/audit?item=abc")
    field = page.get_by_label("信息编号", exact=True)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description("只看与该信息有关的记录 信息编号须为正整数。")
    axe_check(page)
