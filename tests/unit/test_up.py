"""Which channels `publisher up` points at its sandboxes, and what it tells later commands."""

from __future__ import annotations

from pathlib import Path

from publisher.config import Settings
from publisher.up import sandbox_environment, write_channels_env


def test_unconfigured_channels_use_their_sandbox_and_configured_ones_never_do(
    tmp_path: Path,
) -> None:
    settings = Settings(var_dir=tmp_path, wechat_port=9103)
    environ = {
        "PUBLISHER_WEBSITE_PORT": "9101",  # a port is not configuration of the channel
        "PUBLISHER_WECHAT_POLL_SECONDS": "1",  # nor a policy
        "PUBLISHER_WEIBO_ACCESS_TOKEN": "real-token",  # a real account: never to a sandbox
    }
    env, sandboxed = sandbox_environment(settings, environ)
    assert sandboxed == ["website", "catalogue", "wechat"]
    assert env["PUBLISHER_WECHAT_API_BASE"] == "http://127.0.0.1:9103"
    assert env["PUBLISHER_WECHAT_SECRET"] == "sandbox-secret"
    # The sandbox runs in safe mode, with a key the settings accept.
    safe = Settings(**{k.removeprefix("PUBLISHER_").lower(): v for k, v in env.items()})
    assert safe.wechat_aes_key and len(safe.wechat_aes_key) == 43
    assert "PUBLISHER_WEIBO_API_BASE" not in env and env["PUBLISHER_WEIBO_ACCESS_TOKEN"] == (
        "real-token"
    )
    write_channels_env(settings, env, sandboxed)
    written = (tmp_path / "channels.env").read_text()
    assert "PUBLISHER_WECHAT_API_BASE=http://127.0.0.1:9103" in written
    assert "real-token" not in written  # only what `up` chose, never the operator's own
