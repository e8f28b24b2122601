"""Telling the channel sandboxes what a real account is told on its settings pages.

A real WeChat account is given the URL its publish-finished events go to and the token
that signs them; a real Weibo app is given its safe domains, the hosts a post may link to.
The sandboxes start with neither: `publisher up` and `publisher sandbox
--wechat-callback-url/--weibo-safe-domain` (the compose sandbox profile) set them through
the sandboxes' control endpoints once those answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import requests

from channels.sandbox.weibo import DEFAULT_CONFIG as WEIBO_SANDBOX_DEFAULTS


def wait_http(url: str, timeout: float = 30.0) -> bool:
    """Whether `url` answered anything but a server error within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def wire_wechat_callback(
    wechat_base: str, callback_url: str, token: str, aes_key: str = ""
) -> None:
    """Have the WeChat sandbox at `wechat_base` POST finished publish jobs to `callback_url`,
    signed with `token`, in safe mode (encrypted with `aes_key`) when one is given. Raises
    `requests.RequestException` when the sandbox refuses."""
    requests.post(
        f"{wechat_base}/_sandbox/wechat",
        json={"callback_url": callback_url, "callback_token": token, "callback_aes_key": aes_key},
        timeout=5,
    ).raise_for_status()


def allow_weibo_links(weibo_base: str, hosts: Iterable[str]) -> None:
    """Have the Weibo sandbox at `weibo_base` accept links to `hosts` (and to its default
    127.0.0.1 and localhost). Raises `requests.RequestException` when it refuses."""
    domains = [*WEIBO_SANDBOX_DEFAULTS["safe_domains"], *hosts]
    requests.post(
        f"{weibo_base}/_sandbox/weibo/config", json={"safe_domains": domains}, timeout=5
    ).raise_for_status()
