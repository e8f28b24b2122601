"""Browser tests: Playwright for Python driving Debian's chromium (`/usr/bin/chromium`,
installed by `make test`; Playwright never downloads a browser here) on the whole system as
`publisher up --demo` runs it.

Fixtures:
- `publisher_system`: the running system (`RunningSystem`: `base_url`, `sandboxes[kind]`,
  `users[name]` with their passwords), one for all the browser tests;
- `browser`: one headless chromium for all of them;
- `page`: a page in a context of its own (no cookies shared between tests) whose relative
  URLs go to the console (`page.goto("/login")`), in zh-CN and Beijing time; the test fails
  at teardown if the page showed console errors or uncaught exceptions (`page_errors.allow`
  lets one through), and a failed test leaves a screenshot `failed-<test>.png`.

Helpers (`axe_check`, `screenshot`, `login`) are in `tests/browser/support.py`.

Without chromium the tests are skipped, loudly (a warning and the skip's reason), unless the
`CI` variable is set: there they fail. Every test here is marked `browser` (`-m "not browser"`
leaves them out).

The system and the browser are package-scoped, not session-scoped: one per run all the same,
since every browser test lives in this package, and stopped as soon as the last of them ends,
rather than left idling under the eight minutes of other suites (the chaos suite's timing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.browser.support import (
    CHROMIUM,
    PageErrors,
    check_page_errors,
    require_chromium,
    screenshot,
)
from tests.browser.system import PublisherUp, RunningSystem
from tests.support import fresh_redis

# Belt and braces: nothing here installs a browser, and no child process should either.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

HERE = Path(__file__).resolve().parent
DEFAULT_TIMEOUT_MS = 10_000  # a missing button fails in seconds, not after Playwright's 30


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if call.when == "call":
        item.stash[CALL_FAILED] = bool(getattr(report, "failed", False))
    return report


@pytest.fixture(scope="package")
def publisher_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    require_chromium()  # before starting anything the tests could not use
    up = PublisherUp(tmp_path_factory.mktemp("browser-system"), fresh_redis(), extra_env={})
    try:
        yield up.start()
    finally:
        up.stop()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    require_chromium()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Playwright starts chromium with --no-sandbox unless asked for the sandbox. Chromium
    # refuses its sandbox to root (our CI, and this machine), so it is asked for only when
    # we are not root.
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, chromium_sandbox=os.geteuid() != 0
    )
    yield browser
    browser.close()


@pytest.fixture
def page_errors() -> PageErrors:
    """The `page` fixture's error record: `page_errors.allow(pattern)` lets an expected
    error through."""
    return PageErrors()


@pytest.fixture
def page(
    browser: Browser,
    publisher_system: RunningSystem,
    page_errors: PageErrors,
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    context = browser.new_context(
        base_url=publisher_system.base_url, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    page_errors.watch(page)
    try:
        yield page
        if request.node.stash.get(CALL_FAILED, False) and not page.is_closed():
            screenshot(page, "failed-" + re.sub(r"[^\w.-]+", "_", request.node.name))
    finally:
        context.close()
    check_page_errors(page_errors)
