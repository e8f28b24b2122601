"""What `docker compose config` makes of docker-compose.yml, for the tests.

No Docker engine runs here and the `docker` CLI has no compose plugin, so this reads the
file as compose does for the parts we use: env files in order (later ones win; the process
environment is not consulted, so a test states everything), `${NAME}`, `${NAME:-default}`,
`${NAME-default}`, `${NAME:?message}`, `${NAME?message}`, `${NAME:+alt}`, `$NAME` and `$$`
interpolated in every string of the file, extension fields (`x-…`) included, and services
whose `profiles` are all off dropped (`COMPOSE_PROFILES` from the env files, or `profiles`).
Like compose, a required variable stops the whole file, also in a service whose profile is off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A `${NAME:?message}` (or `?`) whose variable is unset (or, with `:`, empty)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name, self.message = name, message


def read_env_files(*paths: Path) -> dict[str, str]:
    """The variables of `paths`, later files winning, as `--env-file a --env-file b` reads them."""
    env: dict[str, str] = {}
    for path in paths:
        env.update({k: v or "" for k, v in dotenv_values(path).items()})
    return env


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`text` with its variables replaced from `env`. Raises `MissingVariable`."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset else str(value)
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(name, arg)
            return str(value)
        if op in (":+", "+"):
            return "" if unset else arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def _interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    """The file as YAML reads it (merge keys applied), before interpolation."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def compose_config(env: Mapping[str, str], profiles: Iterable[str] = ()) -> dict[str, Any]:
    """The file as `docker compose config` prints it for `env` and `profiles`: interpolated,
    services of profiles that are off left out. Raises `MissingVariable`."""
    config: dict[str, Any] = _interpolated(raw_compose(), env)
    active = {*profiles, *filter(None, env.get("COMPOSE_PROFILES", "").split(","))}
    config["services"] = {
        name: service
        for name, service in config["services"].items()
        if not service.get("profiles") or active & set(service["profiles"])
    }
    return config


def service_env(config: Mapping[str, Any], service: str) -> dict[str, str]:
    """A service's environment as a mapping (compose also allows a list of NAME=value)."""
    environment = config["services"][service].get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {name: "" if value is None else str(value) for name, value in environment.items()}
