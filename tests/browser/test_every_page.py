"""Every main page of the console, as an admin (who may open them all) on `publisher up
--demo`: no console errors (the `page` fixture), axe-core's WCAG 2.x A/AA rules, no sideways
scroll at half width (200 % zoom), every form control labelled, and a screenshot
(`var/screenshots/page-<name>.png`). The flows of each role are in the other browser tests."""

from __future__ import annotations

import requests
from playwright.sync_api import Page, expect

from tests.browser.support import api_token, axe_check, fits_half_width, login, screenshot
from tests.browser.system import RunningSystem

PAGES = {
    "items": "/console/items",
    "review": "/console/items?view=review",
    "compose": "/console/items/new",
    "item": "/console/items/{item_id}",
    "edit": "/console/items/{item_id}/edit",
    "operations": "/console/operations",
    "deliveries": "/console/deliveries",
    "delivery": "/console/deliveries/{delivery_id}",
    "drift": "/console/drift",
    "supervision": "/console/supervision",
    "audit": "/console/audit",
    "password": "/console/password",
}
# Every visible control either has a <label for>, is wrapped in one, or is named by aria.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !el.getAttribute('aria-labelledby'))
    .map(el => el.outerHTML.slice(0, 120))"""


def demo_ids(system: RunningSystem) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {api_token(system, 'admin')}"}
    items = requests.get(
        f"{system.base_url}/api/v1/items", params={"limit": 1}, headers=headers, timeout=10
    ).json()["results"]
    deliveries = requests.get(
        f"{system.base_url}/api/v1/deliveries", params={"limit": 1}, headers=headers, timeout=10
    ).json()["results"]
    assert items and deliveries, "the demo has no items or deliveries"
    return {"item_id": int(items[0]["id"]), "delivery_id": int(deliveries[0]["id"])}


def test_every_main_page_is_clean_accessible_and_fits_200_percent_zoom(
    page: Page, publisher_system: RunningSystem
) -> None:
    ids = demo_ids(publisher_system)
    admin = publisher_system.users["admin"]
    login(page, admin.name, admin.password)
    for name, path in PAGES.items():
        page.goto(path.format(**ids))
        expect(page.get_by_role("heading", level=1).first).to_be_visible()
        assert page.evaluate(UNLABELLED) == [], f"{name}: controls without a label"
        axe_check(page)
        fits_half_width(page)
        screenshot(page, f"page-{name}")
