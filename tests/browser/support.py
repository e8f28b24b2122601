"""What the browser tests stand on, besides the fixtures of `conftest.py`:

- `PageErrors`: the console errors and uncaught exceptions of a page; the `page` fixture
  fails a test that leaves any it did not `allow`;
- `axe_violations(page)` / `axe_check(page)`: an axe-core scan with the script shipped in
  `vendor/` (WCAG 2.x levels A and AA, what GB/T 37668 asks of a web page);
- `screenshot(page, name)`: a full-page PNG in `var/screenshots/<name>.png`;
- `login(page, user, password)`: signs in through the console's `/login` form;
- `api_token(system, name)` / `add_user(system, …)`: a demo user's API token, and a new user
  made by the demo admin through the API;
- `require_chromium()`: skips loudly without Debian's chromium, or fails in CI.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import ConsoleMessage, Error, Locator, Page

from tests.browser.system import RunningSystem

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, installed by `make test`
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
VENDOR = Path(__file__).resolve().parent / "vendor"
AXE_VERSION = "4.14.1"  # vendor/README.md says where it comes from
# The WCAG 2.0-2.2 success criteria of levels A and AA. axe's "best-practice" rules (one <h1>
# per page, every element in a landmark) are advice, not criteria, and are left out.
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")
SCREENSHOT_NAME = re.compile(r"^[\w.-]+$")


def require_chromium(path: Path = CHROMIUM) -> None:
    """Skip, with a warning, when chromium is not at `path`; fail instead when the `CI`
    variable is set (CI must run the browser tests, never pass by skipping them)."""
    if os.access(path, os.X_OK):
        return
    reason = (
        f"{path} is missing: `make test` installs Debian's chromium package "
        "(apt-get install chromium); the browser tests cannot run without it"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: failing rather than skipping)")
    warnings.warn(reason, pytest.PytestWarning, stacklevel=2)
    pytest.skip(reason)


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions of the pages it `watch`es, as readable lines."""

    found: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def allow(self, pattern: str) -> None:
        """An error the test expects, e.g. the browser's own "Failed to load resource: …
        status of 403" on a page that answers 403 on purpose (`re.search` on the line)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [line for line in self.found if not any(p.search(line) for p in self.allowed)]

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location
            at = f" ({where['url']}:{where['lineNumber']})" if where.get("url") else ""
            self.found.append(f"console error: {message.text}{at}")

    def _on_page_error(self, error: Error) -> None:
        self.found.append(f"uncaught exception: {error.name}: {error.message}")


def check_page_errors(errors: PageErrors) -> None:
    """Raises AssertionError listing every error the page showed that no test allowed."""
    unexpected = errors.unexpected()
    if unexpected:
        raise AssertionError(
            f"the page showed {len(unexpected)} error(s) in the browser:\n"
            + "\n".join(f"  {line}" for line in unexpected)
        )


@dataclass(frozen=True)
class AxeViolation:
    id: str
    impact: str | None
    help: str
    help_url: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.id} ({self.impact}): {self.help} — {', '.join(self.targets)}"


_AXE_RUN = """async tags => {
    const results = await axe.run(document, {runOnly: {type: "tag", values: tags}});
    return results.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        targets: v.nodes.map(n => n.target.map(t => [].concat(t).join(" >>> ")).join(" ")),
    }));
}"""


def axe_violations(page: Page) -> list[AxeViolation]:
    """axe-core's violations on the page as it is now. The script goes in through the
    DevTools protocol, which the page's Content-Security-Policy does not govern, so the scan
    runs on the console exactly as it is served."""
    if page.evaluate("() => typeof window.axe") == "undefined":
        page.evaluate(_axe_source())
    version = page.evaluate("() => window.axe.version")
    assert version == AXE_VERSION, f"axe {version} on the page, {AXE_VERSION} expected"
    found: list[dict[str, Any]] = page.evaluate(_AXE_RUN, list(AXE_TAGS))
    return [
        AxeViolation(v["id"], v["impact"], v["help"], v["helpUrl"], tuple(v["targets"]))
        for v in found
    ]


def axe_check(page: Page) -> None:
    """Raises AssertionError listing each axe-core violation (id, impact, help, targets)."""
    violations = axe_violations(page)
    if violations:
        raise AssertionError(
            f"axe-core found {len(violations)} accessibility violation(s) on {page.url}:\n"
            + "\n".join(f"  {v}\n    {v.help_url}" for v in violations)
        )


@cache
def _axe_source() -> str:
    return (VENDOR / "axe.min.js").read_text(encoding="utf-8")


def screenshot(page: Page, name: str) -> Path:
    """The whole page as `var/screenshots/<name>.png` under the repository (made if needed);
    its path. `name`: letters, digits, `_`, `-` and `.`."""
    if not SCREENSHOT_NAME.match(name):
        raise ValueError(f"screenshot name {name!r}: letters, digits, '_', '-' and '.' only")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def expect_no_sideways_scroll(page: Page) -> None:
    """The page body does not scroll sideways at the window's present width (wide tables
    scroll in their own box)."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at half width"


def fits_half_width(page: Page) -> None:
    """At half the width (what 200 % zoom leaves of a 1280-pixel window) the page body does
    not scroll sideways."""
    page.set_viewport_size({"width": 640, "height": 720})
    expect_no_sideways_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 720})


def login(page: Page, user: str, password: str) -> None:
    """Sign in through the console's `/login` form: the fields labelled 用户名 and 密码
    (`name="username"`, `name="password"`) and the button 登录. Returns once the browser has
    left `/login` (within the page's default timeout); raises AssertionError with the page's
    text when it stays there (a refused password), or when a field is not as described
    (Playwright's TimeoutError when one is missing). Relative to the context's `base_url`."""
    page.goto("/login")
    username = page.get_by_label("用户名", exact=True)
    secret = page.get_by_label("密码", exact=True)
    _expect_name(username, "用户名", "username")
    _expect_name(secret, "密码", "password")
    username.fill(user)
    secret.fill(password)
    page.get_by_role("button", name="登录", exact=True).click()
    try:
        page.wait_for_url(lambda url: not _is_login(url))
    except Error as exc:
        text = page.locator("body").inner_text()
        raise AssertionError(f"still on {page.url} after signing in as {user!r}:\n{text}") from exc


def _expect_name(field: Locator, label: str, name: str) -> None:
    actual = field.get_attribute("name")
    assert actual == name, f"the field labelled {label} has name={actual!r}, not {name!r}"


def _is_login(url: str) -> bool:
    return re.search(r"^[a-z]+://[^/]+/login(?:[?#]|$)", url) is not None


def api_token(system: RunningSystem, name: str) -> str:
    """The API token of demo user `name`, signed in through `POST /api/v1/login`."""
    user = system.users[name]
    answer = requests.post(
        f"{system.base_url}/api/v1/login",
        json={"name": user.name, "password": user.password},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def add_user(
    system: RunningSystem, name: str, role: str, password: str, departments: tuple[str, ...] = ()
) -> None:
    """A new user made by the demo admin through `POST /api/v1/users`."""
    account: dict[str, Any] = {"name": name, "role": role, "password": password}
    if departments:
        account["departments"] = list(departments)
    made = requests.post(
        f"{system.base_url}/api/v1/users",
        json=account,
        headers={"Authorization": f"Bearer {api_token(system, 'admin')}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
