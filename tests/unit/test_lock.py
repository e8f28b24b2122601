"""The locks are in step with pyproject.toml: a dependency added or a floor raised without
`make lock` fails here, before an install from the stale lock would leave it out."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    """Name (normalised) → pinned version of every package in the lock file `lock`."""
    text = (ROOT / lock).read_text()
    return {canonicalize_name(m["name"]): m["version"] for m in PIN.finditer(text)}


def declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    return runtime, [Requirement(r) for r in project["optional-dependencies"]["dev"]]


def out_of_step(requirements: list[Requirement], locked: dict[str, str]) -> list[str]:
    """The requirements `locked` does not pin, or pins outside their specifier."""
    wrong = []
    for requirement in requirements:
        version = locked.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            wrong.append(f"{requirement} (locked: {version})")
    return wrong


def test_every_dependency_is_pinned_within_its_specifier() -> None:
    runtime, dev = declared()
    assert not out_of_step(runtime + dev, pins("requirements-dev.lock")), "run `make lock`"
    assert not out_of_step(runtime, pins("requirements.lock")), "run `make lock`"


def test_the_image_lock_pins_what_make_tests_with() -> None:
    image, tested = pins("requirements.lock"), pins("requirements-dev.lock")
    assert image and {name: tested.get(name) for name in image} == image


def test_every_pin_carries_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text())
        for entry in (e for e in entries if PIN.match(e)):
            assert "--hash=sha256:" in entry, (lock, entry.splitlines()[0])


def test_make_installs_from_the_dev_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(STAMP\):(?P<prerequisites>.*)$", makefile, re.MULTILINE)
    assert stamp and "$(DEV_LOCK)" in stamp["prerequisites"]
    assert "pip install --quiet --require-hashes -r $(DEV_LOCK)" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
