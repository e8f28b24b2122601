"""The message catalogue (`publisher.i18n`): one key, one message; every key used exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from publisher.i18n import CATALOGUE, t

ROOT = Path(__file__).resolve().parents[2]
# t("key") / t('key') in Python, and {{ t("key") }} in the console's templates; a literal
# joined to a value in a template (`t("role." ~ who.role.value)`) is the prefix of its keys.
USED = re.compile(r"""\bt\(\s*["']([a-z0-9_.\-]+)["'](\s*~)?""")


def used_keys() -> tuple[set[str], set[str]]:
    """The keys used whole, and the prefixes of keys made up in templates."""
    keys: set[str] = set()
    prefixes: set[str] = set()
    for folder in ("publisher", "workers"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".html") and path.is_file():
                for key, joined in USED.findall(path.read_text(encoding="utf-8")):
                    (prefixes if joined else keys).add(key)
    return keys, prefixes


def test_every_key_used_in_code_and_templates_has_a_message() -> None:
    keys, prefixes = used_keys()
    missing = sorted(keys - set(CATALOGUE))
    assert not missing, f"t() keys with no message in publisher/i18n: {missing}"
    unmatched = sorted(p for p in prefixes if not any(k.startswith(p) for k in CATALOGUE))
    assert not unmatched, f"t(prefix ~ …) with no message under the prefix: {unmatched}"


def test_a_message_is_filled_from_its_fields_and_a_missing_key_is_an_error() -> None:
    assert t("app.name") == "政务信息多渠道发布"
    with pytest.raises(KeyError):
        t("no.such.key")
