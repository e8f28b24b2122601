"""docker-compose.yml cannot be started here (no Docker engine): read it as `docker compose
config` would (tests/compose_config.py) with the env files a deployment uses, and check what
each profile runs, publishes and hands every process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from channels.registry import KINDS
from channels.weibo_text import host_is_safe
from publisher.api.wechat_callback import CallbackKeys, wechat_callback_router
from publisher.channel_config import channel_settings
from publisher.cli import main
from publisher.config import Settings
from tests.compose_config import (
    ROOT,
    MissingVariable,
    compose_config,
    raw_compose,
    read_env_files,
    service_env,
)

# What an operator fills in .env (everything else as .env.example has it).
SECRETS = {
    "POSTGRES_PASSWORD": "pg-3f9c",
    "REDIS_PASSWORD": "redis-8a1d",
    "PUBLISHER_SECRET_KEY": "c2VhbGluZy1rZXktb2YtdGhpcnR5LXR3by1ieXRlcyE=",
    "PUBLISHER_METRICS_TOKEN": "scrape-5e2b-a-token-of-thirty-two-chars",
}
PRODUCTION = {"postgres", "redis", "migrate", "api", "worker", "beat"}
# What each process reads before it can do its work, besides its command line.
NEEDS = {
    "migrate": {"PUBLISHER_DATABASE_URL"},
    "api": {
        "PUBLISHER_DATABASE_URL",
        "PUBLISHER_BROKER_URL",
        "PUBLISHER_REDIS_URL",
        "PUBLISHER_SECRET_KEY",
        "PUBLISHER_METRICS_TOKEN",
        "PUBLISHER_PUBLIC_BASE_URL",
    },
    "worker": {
        "PUBLISHER_DATABASE_URL",
        "PUBLISHER_BROKER_URL",
        "PUBLISHER_REDIS_URL",
        "PUBLISHER_SECRET_KEY",
        "PUBLISHER_PUBLIC_BASE_URL",
    },
    "beat": {"PUBLISHER_DATABASE_URL", "PUBLISHER_BROKER_URL", "PUBLISHER_REDIS_URL"},
    "sandbox": {"PUBLISHER_WECHAT_CALLBACK_TOKEN"},
    "flower": {"CELERY_BROKER_URL", "FLOWER_BASIC_AUTH"},
}


def dotenv() -> dict[str, str]:
    """A filled-in .env: the example with the secrets set."""
    return {**read_env_files(ROOT / ".env.example"), **SECRETS, "FLOWER_BASIC_AUTH": "ops:pw-1"}


def production() -> dict[str, Any]:
    return compose_config(dotenv())


def sandboxed() -> dict[str, Any]:
    """`docker compose --env-file .env --env-file sandbox.env config`."""
    return compose_config({**dotenv(), **read_env_files(ROOT / "sandbox.env")})


def every_profile() -> dict[str, Any]:
    return compose_config(dotenv(), profiles=["sandbox", "monitoring"])


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each `IP:HOST:CONTAINER` port."""
    ports = []
    for port in service.get("ports", []):
        match = re.fullmatch(r"(?P<ip>[\d.]+):(?P<host>\d+):(?P<target>\d+)", port)
        assert match, f"publish ports as IP:HOST:CONTAINER, never on every address: {port}"
        ports.append((match["ip"], int(match["host"]), int(match["target"])))
    return ports


def option_values(command: list[str], option: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == option]


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a process with exactly `env` builds (values parsed as in production)."""
    for name in [n for n in os.environ if n.startswith("PUBLISHER_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_compose_parses_and_has_every_service_the_readme_names() -> None:
    services = raw_compose()["services"]
    readme = (ROOT / "README.md").read_text()
    named = re.search(r"\(postgres, redis, migrate, api, worker, beat, flower, sandbox\)", readme)
    assert named, "README lists the compose services"
    assert set(services) == {*PRODUCTION, "flower", "sandbox"}


def test_compose_commands_are_real_cli_commands() -> None:
    runner = CliRunner()
    for name, spec in every_profile()["services"].items():
        command = spec.get("command")
        if not command or command[0] != "publisher":
            continue
        args = [a for a in command[1:] if not a.startswith("--")][:2]
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (name, command, result.output)
        for option in (a for a in command[1:] if a.startswith("--")):
            assert option in result.output, (name, option)


def test_without_the_secrets_compose_stops_and_says_which_to_set() -> None:
    for name in SECRETS:
        for env in ({k: v for k, v in dotenv().items() if k != name}, {**dotenv(), name: ""}):
            with pytest.raises(MissingVariable) as missing:
                compose_config(env)
            assert missing.value.name == name
            assert f"set {name} in .env" in missing.value.message


def test_every_secret_is_required_and_none_has_a_default() -> None:
    text = str(raw_compose())  # the values, not the comments
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"(\W*)", text)
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)
    example = read_env_files(ROOT / ".env.example")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required == set(SECRETS)
    assert all(example[name] == "" for name in required), ".env.example holds no real value"


def test_production_runs_no_sandbox_no_flower_and_publishes_only_the_api() -> None:
    services = production()["services"]
    assert set(services) == PRODUCTION
    ports = {name: published(spec) for name, spec in services.items() if spec.get("ports")}
    assert ports == {"api": [("127.0.0.1", 8000, 8000)]}
    for spec in services.values():
        for value in service_env({"services": {"s": spec}}, "s").values():
            assert "sandbox" not in value, "production points no channel at a sandbox"


def test_every_password_comes_from_the_env_file() -> None:
    config = every_profile()
    redis = config["services"]["redis"]
    assert option_values(redis["command"], "--requirepass") == [SECRETS["REDIS_PASSWORD"]]
    assert service_env(config, "redis")["REDISCLI_AUTH"] == SECRETS["REDIS_PASSWORD"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert service_env(config, "postgres")["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    urls = [
        value
        for name in config["services"]
        for value in service_env(config, name).values()
        if re.match(r"(redis|postgresql\+psycopg)://", value)
    ]
    assert len(urls) >= 8
    for url in urls:
        wanted = "REDIS_PASSWORD" if url.startswith("redis") else "POSTGRES_PASSWORD"
        assert urlsplit(url).password == SECRETS[wanted], url


def test_the_bootstrap_token_reaches_the_api_only() -> None:
    config = compose_config({**dotenv(), "PUBLISHER_BOOTSTRAP_TOKEN": "b" * 40}, ["sandbox"])
    holders = [
        name
        for name in config["services"]
        if "b" * 40 in str(config["services"][name].get("environment"))
    ]
    assert holders == ["api"]


def test_every_service_has_what_its_command_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    config = compose_config(
        {**dotenv(), **read_env_files(ROOT / "sandbox.env")}, profiles=["monitoring"]
    )
    assert set(config["services"]) == set(NEEDS) | {"postgres", "redis"}
    for name, needed in NEEDS.items():
        env = service_env(config, name)
        assert {n for n in needed if env.get(n)} == needed, name
        if name != "flower":
            settings_from(env, monkeypatch)  # values parse (JSON lists, URLs, lengths)


def test_every_publisher_variable_is_a_setting() -> None:
    fields = {f"PUBLISHER_{name.upper()}" for name in Settings.model_fields}
    config = every_profile()
    names = {n for s in config["services"] for n in service_env(config, s)}
    names |= set(read_env_files(ROOT / ".env.example")) | set(read_env_files(ROOT / "sandbox.env"))
    unknown = {n for n in names if n.startswith("PUBLISHER_")} - fields
    assert not unknown, f"not fields of publisher.config.Settings: {sorted(unknown)}"


def test_the_sandbox_profile_points_every_channel_at_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = sandboxed()
    assert set(config["services"]) == PRODUCTION | {"sandbox"}
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    sandbox_ports = {getattr(defaults, f"{kind}_port") for kind in KINDS}
    assert published(config["services"]["sandbox"]) == [
        ("127.0.0.1", port, port) for port in sorted(sandbox_ports)
    ]
    for name in ("api", "worker"):  # beat sends nothing to the channels
        settings = settings_from(service_env(config, name), monkeypatch)
        for kind in KINDS:
            base = urlsplit(getattr(settings, f"{kind}_api_base"))
            assert (base.hostname, base.port) == ("sandbox", getattr(defaults, f"{kind}_port"))
            channel_settings(kind, settings)  # configured: raises ChannelDisabled otherwise


def test_the_weibo_sandbox_accepts_the_links_the_website_sandbox_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = sandboxed()
    settings = settings_from(service_env(config, "worker"), monkeypatch)
    # The website sandbox builds article links from the Host the worker called it by.
    link = f"{settings.website_api_base}/articles/A1.html"
    accepted = option_values(config["services"]["sandbox"]["command"], "--weibo-safe-domain")
    assert host_is_safe(link, accepted), (link, accepted)
    assert host_is_safe(link, settings.weibo_safe_domains or [urlsplit(link).hostname or ""])


def test_the_wechat_sandbox_reports_finished_jobs_to_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = sandboxed()
    command = config["services"]["sandbox"]["command"]
    (callback,) = option_values(command, "--wechat-callback-url")
    api_port = option_values(config["services"]["api"]["command"], "--port")
    url = urlsplit(callback)
    assert (url.hostname, [str(url.port)]) == ("api", api_port)
    routes = wechat_callback_router(CallbackKeys("token"), lambda *_: True, lambda *_: None).routes
    assert url.path in {getattr(route, "path", None) for route in routes}
    api = settings_from(service_env(config, "api"), monkeypatch)
    sandbox = service_env(config, "sandbox")
    assert api.wechat_callback_token and sandbox["PUBLISHER_WECHAT_CALLBACK_TOKEN"] == (
        api.wechat_callback_token
    )
    # Safe mode, as a real account is set up: the sandbox encrypts with the api's key.
    assert api.wechat_aes_key and sandbox["PUBLISHER_WECHAT_AES_KEY"] == api.wechat_aes_key


def test_secrets_reach_only_the_services_that_use_them() -> None:
    """Beat only schedules: the store and the broker, nothing of the channels. The callback's
    token and key are the api's (and the sandbox's, which signs with them)."""
    config = sandboxed()
    beat = set(service_env(config, "beat"))
    assert beat == {"PUBLISHER_DATABASE_URL", "PUBLISHER_BROKER_URL", "PUBLISHER_REDIS_URL"}
    for name in ("PUBLISHER_WECHAT_CALLBACK_TOKEN", "PUBLISHER_WECHAT_AES_KEY"):
        holders = [s for s in config["services"] if name in service_env(config, s)]
        assert holders == ["api", "sandbox"], name


def test_flower_only_with_monitoring_on_loopback_and_never_without_a_password() -> None:
    assert "flower" not in sandboxed()["services"]
    config = compose_config(dotenv(), profiles=["monitoring"])
    flower = config["services"]["flower"]
    assert published(flower) == [("127.0.0.1", 5555, 5555)]
    guard = flower["entrypoint"][-1].replace("exec celery flower", "echo started")
    for auth, code, said in (("", 2, "set FLOWER_BASIC_AUTH"), ("ops:pw", 0, "started")):
        run = subprocess.run(
            [*flower["entrypoint"][:-1], guard],
            env={"FLOWER_BASIC_AUTH": auth, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (run.returncode, said in run.stdout + run.stderr) == (code, True), run


def test_the_api_has_a_healthcheck_on_healthz() -> None:
    check = production()["services"]["api"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "python"] and "http://127.0.0.1:8000/healthz" in check[-1]


def test_the_image_runs_unprivileged_with_cjk_fonts_the_bench_and_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the last USER is not root"
    assert "fonts-noto-cjk" in dockerfile
    # Where Debian's fonts-noto-cjk puts the font the cover cards look for.
    noto = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    assert noto in (ROOT / "channels" / "wechat_render.py").read_text()
    assert re.search(r"^COPY bench \./bench$", dockerfile, re.MULTILINE)
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert Path(ROOT / "requirements.lock").is_file()
