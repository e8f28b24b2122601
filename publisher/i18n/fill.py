"""How a message of the catalogue is filled: `str.format` fields from values. Areas that word
their own messages (`problems`, `deliveries`, `refusals`) use it on their `MESSAGES`, so that
no area imports the package that gathers them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fill(messages: Mapping[str, str], key: str, /, **values: Any) -> str:
    """The message `key` of `messages` (a missing key raises `KeyError`), its `{fields}`
    filled from `values`."""
    message = messages[key]
    return message.format(**values) if values else message
