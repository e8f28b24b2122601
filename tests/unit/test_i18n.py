"""The message catalogue (`publisher.i18n`): one key, one message; every key used exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from publisher.i18n import CATALOGUE, t

ROOT = Path(__file__).resolve().parents[2]
# t("key") / t('key') in Python, and {{ t("key") }} in the console's templates; a key built
# from a prefix (`t("status." ~ state)` in a template) is checked as a prefix.
USED = re.compile(r"""\bt\(\s*["']([a-z0-9_.\-]+)["'](?!\s*[~+])""")
PREFIXES = re.compile(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']\s*[~+]""")


def used_keys(pattern: re.Pattern[str] = USED) -> set[str]:
    keys: set[str] = set()
    for folder in ("publisher", "workers"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".html") and path.is_file():
                keys |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return keys


def test_every_key_used_in_code_and_templates_has_a_message() -> None:
    missing = sorted(used_keys() - set(CATALOGUE))
    assert not missing, f"t() keys with no message in publisher/i18n: {missing}"
    empty = sorted(p for p in used_keys(PREFIXES) if not any(k.startswith(p) for k in CATALOGUE))
    assert not empty, f"t() key prefixes with no message in publisher/i18n: {empty}"


def test_a_message_is_filled_from_its_fields_and_a_missing_key_is_an_error() -> None:
    assert t("app.name") == "政务信息多渠道发布"
    with pytest.raises(KeyError):
        t("no.such.key")
