"""docker-compose.yml cannot be started here (no Docker engine): it must at least parse,
name every service the README promises, and run only commands the CLI really has."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from publisher.cli import main

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_parses_and_has_every_service_the_readme_names() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    readme = (ROOT / "README.md").read_text()
    named = re.search(r"\(postgres, redis, migrate, api, worker, beat, flower, sandbox\)", readme)
    assert named, "README lists the compose services"
    for name in ("postgres", "redis", "migrate", "api", "worker", "beat", "flower", "sandbox"):
        assert name in services, name


def test_compose_commands_are_real_cli_commands() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    runner = CliRunner()
    for name, spec in services.items():
        command = spec.get("command")
        if not command or command[0] != "publisher":
            continue
        args = [a for a in command[1:] if not a.startswith("--")][:2]
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (name, command, result.output)
        for option in (a for a in command[1:] if a.startswith("--")):
            assert option in result.output, (name, option)


def test_compose_points_every_process_at_postgres_and_redis() -> None:
    env = compose()["x-publisher-env"]
    assert isinstance(env, dict)
    assert env["PUBLISHER_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["PUBLISHER_BROKER_URL"].startswith("redis://")
    assert env["PUBLISHER_REDIS_URL"].startswith("redis://")
