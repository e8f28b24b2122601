"""The browser tests' own footing, before any console page exists: the system and its demo
users, a real page of the API with no errors and its screenshot, the axe-core scan, the error
check of the `page` fixture and the `login` helper, each shown to fail when it should."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, Route

from tests.browser.support import (
    PageErrors,
    axe_check,
    axe_violations,
    check_page_errors,
    login,
    require_chromium,
    screenshot,
)
from tests.browser.system import RunningSystem

ACCESSIBLE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>检索</title></head>
<body><main><h1>检索公开信息</h1>
<form><label for="q">标题或索引号</label><input id="q" name="q">
<button type="submit">检索</button></form></main></body></html>"""
UNLABELLED = ACCESSIBLE.replace('<label for="q">标题或索引号</label>', "")


@pytest.fixture
def blank_page(browser: Browser) -> Iterator[Page]:
    """A page of its own, with none of the `page` fixture's checks."""
    context = browser.new_context(base_url="http://127.0.0.1:9")  # nothing listens there
    context.set_default_timeout(3_000)
    yield context.new_page()
    context.close()


def test_the_system_runs_with_demo_users_who_can_sign_in(
    publisher_system: RunningSystem,
) -> None:
    users = publisher_system.users
    assert {u.role for u in users.values()} == {
        "admin",
        "editor",
        "reviewer",
        "operator",
        "supervisor",
    }
    assert users["editor"].departments == ("sgj",)
    supervisor = users["supervisor"]
    signed_in = requests.post(
        f"{publisher_system.base_url}/api/v1/login",
        json={"name": supervisor.name, "password": supervisor.password},
        timeout=10,
    )
    assert signed_in.status_code == 200, signed_in.text
    for kind, base in publisher_system.sandboxes.items():
        assert requests.get(f"{base}/_sandbox/faults", timeout=5).ok, kind


def test_docs_loads_without_errors_and_is_saved_as_a_screenshot(page: Page) -> None:
    started = time.time()
    page.goto("/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    page.get_by_text("/api/v1/items/{item_id}", exact=True).first.wait_for()

    path = screenshot(page, "api-docs")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_mtime >= started
    # axe goes in under the page's own Content-Security-Policy (no 'unsafe-inline' or
    # 'unsafe-eval') and scans it; Swagger UI's own findings are not ours to fix.
    assert isinstance(axe_violations(page), list)
    # Teardown: the page fixture fails the test if /docs showed any console error.


def test_axe_check_names_an_unlabelled_field_and_passes_a_labelled_one(
    blank_page: Page,
) -> None:
    blank_page.set_content(UNLABELLED)

    violations = axe_violations(blank_page)
    with pytest.raises(AssertionError) as refused:
        axe_check(blank_page)

    assert [(v.id, v.impact, v.targets) for v in violations] == [("label", "critical", ("#q",))]
    assert "label (critical): Form elements must have labels — #q" in str(refused.value)

    blank_page.set_content(ACCESSIBLE)
    axe_check(blank_page)


def test_the_error_check_catches_an_exception_and_a_console_error(blank_page: Page) -> None:
    errors = PageErrors()
    errors.watch(blank_page)
    blank_page.set_content(
        "<!doctype html><title>t</title><script>console.error('图表加载失败');"
        "throw new TypeError('boom in the page')</script>"
    )

    with pytest.raises(AssertionError) as caught:
        check_page_errors(errors)

    assert "console error: 图表加载失败" in str(caught.value)
    assert "uncaught exception: TypeError: boom in the page" in str(caught.value)
    errors.allow("图表加载失败")
    errors.allow("boom in the page")
    check_page_errors(errors)


def test_the_error_check_passes_a_clean_page(blank_page: Page) -> None:
    errors = PageErrors()
    errors.watch(blank_page)
    blank_page.set_content("<!doctype html><title>t</title><script>console.log('ok')</script>")

    check_page_errors(errors)
    assert errors.found == []


HTML = "text/html; charset=utf-8"
LOGIN_FORM = """<!doctype html><html lang="zh-CN"><head><title>登录</title></head><body>
<form method="post" action="/login">{error}
<label for="u">用户名</label><input id="u" name="username">
<label for="p">密码</label><input id="p" name="password" type="password">
<button type="submit">登录</button></form></body></html>"""


def serve_console(page: Page, password: str, form: str = LOGIN_FORM) -> list[dict[str, list[str]]]:
    """A stand-in `/login` on the page's origin, built to the console's contract: it takes
    `password` and sends the browser to `/`; the forms posted to it, parsed."""
    posted: list[dict[str, list[str]]] = []

    def answer(route: Route) -> None:
        request = route.request
        path = urlsplit(request.url).path
        if path == "/login" and request.method == "POST":
            posted.append(parse_qs(request.post_data or ""))
            if posted[-1].get("password") == [password]:
                route.fulfill(status=303, headers={"Location": "/"})
                return
            route.fulfill(content_type=HTML, body=form.format(error="<p>密码不正确</p>"))
        elif path == "/login":
            route.fulfill(content_type=HTML, body=form.format(error=""))
        else:
            route.fulfill(content_type=HTML, body="<title>首页</title>首页")

    page.route("**/*", answer)
    return posted


def test_login_fills_the_form_by_its_labels_and_leaves_the_login_page(blank_page: Page) -> None:
    posted = serve_console(blank_page, password="s3cret-密码")

    login(blank_page, "editor", "s3cret-密码")

    assert posted == [{"username": ["editor"], "password": ["s3cret-密码"]}]
    assert urlsplit(blank_page.url).path == "/"


def test_login_says_so_when_the_password_is_refused(blank_page: Page) -> None:
    serve_console(blank_page, password="right")

    with pytest.raises(AssertionError, match="密码不正确"):
        login(blank_page, "editor", "wrong")


def test_login_refuses_a_form_off_the_contract(blank_page: Page) -> None:
    serve_console(blank_page, "right", LOGIN_FORM.replace('name="username"', 'name="user"'))

    with pytest.raises(AssertionError, match="name='user', not 'username'"):
        login(blank_page, "editor", "right")


def test_without_chromium_the_tests_skip_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)

    with (
        pytest.warns(pytest.PytestWarning, match="chromium is missing"),
        pytest.raises(pytest.skip.Exception, match="chromium is missing"),
    ):
        require_chromium(tmp_path / "chromium")


def test_without_chromium_in_ci_the_tests_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="CI is set: failing rather than skipping"):
        require_chromium(tmp_path / "chromium")
