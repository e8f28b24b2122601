"""The one message catalogue for what staff read: zh-CN text for the console, the CLI and the
Chinese side of validation messages. Logs and the OpenAPI schema stay in English.

Each area keeps its messages in a module of this package (`console`, `cli`, …) as a plain
`MESSAGES` dict; `t(key, **values)` looks a key up in all of them and fills `str.format`
fields. A key must exist: a missing key is a programming error, raised at once (`KeyError`),
never shown to staff as a raw key. `tests/unit/test_i18n.py` checks that no two areas define
the same key and that every `t("…")` literal used in the code has a message.

Areas that word their own messages for the rest of the code (`problems.zh`,
`deliveries.waiting_reason`, `refusals.role_name`) fill them from their own `MESSAGES`
(`fill`): no area imports this package, which imports them all.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from publisher.i18n import (
    cli,
    console,
    deliveries,
    ops,
    problems,
    refusals,
    staff,
    supervision,
)
from publisher.i18n.fill import fill

_AREAS = (
    console.MESSAGES,
    staff.MESSAGES,
    supervision.MESSAGES,
    ops.MESSAGES,
    problems.MESSAGES,
    deliveries.MESSAGES,
    refusals.MESSAGES,
    cli.MESSAGES,
)


def _merged() -> MappingProxyType[str, str]:
    merged: dict[str, str] = {}
    for area in _AREAS:
        clash = set(merged) & set(area)
        if clash:
            raise RuntimeError(f"message keys defined twice: {sorted(clash)}")
        merged.update(area)
    return MappingProxyType(merged)


CATALOGUE = _merged()


def t(key: str, /, **values: Any) -> str:
    """The zh-CN message `key`, its `{fields}` filled from `values`."""
    return fill(CATALOGUE, key, **values)


__all__ = ["CATALOGUE", "t"]
