"""`publisher sandbox --weibo-safe-domain/--wechat-callback-url`, as the compose sandbox
profile runs it: a real sandbox process, asked over HTTP what it was told."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from publisher.cli import main
from publisher.config import reset_settings
from tests.support import free_port

CALLBACK = "http://api:8000/wechat/callback"


@pytest.fixture
def wired_sandbox(tmp_path: Path) -> Iterator[dict[str, str]]:
    """WeChat and Weibo sandboxes started as the compose sandbox service starts them."""
    ports = {"wechat": free_port(), "weibo": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    env |= {f"PUBLISHER_{kind.upper()}_PORT": str(port) for kind, port in ports.items()}
    env |= {"PUBLISHER_VAR_DIR": str(tmp_path), "PUBLISHER_WECHAT_CALLBACK_TOKEN": "cb-token"}
    command = [sys.executable, "-m", "publisher.cli", "sandbox", "--only", "wechat"]
    command += ["--only", "weibo", "--data-dir", str(tmp_path / "sandbox")]
    command += ["--weibo-safe-domain", "sandbox", "--wechat-callback-url", CALLBACK]
    log = (tmp_path / "sandbox.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wechat_settings_once_wired(base: str) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            settings: dict[str, str] = requests.get(f"{base}/_sandbox/wechat", timeout=2).json()
            if settings["callback_url"]:
                return settings
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("the WeChat sandbox was never given its callback")


def share(base: str, link: str) -> requests.Response:
    status = f"【测试】一条链接 {link}"
    form = {"access_token": "sandbox", "rip": "127.0.0.1", "status": status}
    return requests.post(f"{base}/2/statuses/share.json", data=form, timeout=5)


def test_the_sandboxes_are_told_the_api_callback_and_the_website_host(
    wired_sandbox: dict[str, str],
) -> None:
    wechat = wechat_settings_once_wired(wired_sandbox["wechat"])
    assert (wechat["callback_url"], wechat["callback_token"]) == (CALLBACK, "cb-token")
    # Weibo is wired first, so it is by now: links to the compose website host are taken,
    # links to other hosts still refused as Weibo refuses them.
    posted = share(wired_sandbox["weibo"], "http://sandbox:8101/articles/A1.html")
    assert posted.status_code == 200, posted.text
    refused = share(wired_sandbox["weibo"], "http://elsewhere:8101/articles/A1.html")
    assert refused.json()["error_code"] == 10017


def test_a_callback_without_its_token_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("PUBLISHER_WECHAT_CALLBACK_TOKEN", raising=False)
    reset_settings()
    result = CliRunner().invoke(main, ["sandbox", "--wechat-callback-url", CALLBACK])
    reset_settings()
    assert result.exit_code == 2
    assert "PUBLISHER_WECHAT_CALLBACK_TOKEN" in result.output
