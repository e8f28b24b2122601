"""Errors of the canonical store and its services.

PublisherError
├── InvalidInput      bad input: one or more (field, rule, message); HTTP 422, CLI exit 2
├── NotFound          the named object does not exist; HTTP 404
├── Conflict          the request contradicts the object's state; HTTP 409
└── Forbidden         the caller's role or department does not allow it; HTTP 403

Each carries its English text (logs, the API's `detail`) and what staff read in Chinese: a
refusal its `zh`, built at the raise site from the message catalogue (`publisher.i18n`); a
field problem the figures of its rule (`values`), from which
`publisher.i18n.problems.zh` builds the Chinese message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class PublisherError(Exception):
    def __init__(self, message: str = "", *, zh: str | None = None) -> None:
        super().__init__(message)
        self.zh = zh


@dataclass(frozen=True)
class FieldProblem:
    """`field` breaks `rule`. `message` is the English text; `values` carries the rule's
    figures (limits, lengths, the value refused, the choices) for the Chinese one."""

    field: str
    rule: str
    message: str
    channel: str | None = None
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)


class InvalidInput(PublisherError):
    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


class NotFound(PublisherError):
    pass


class Conflict(PublisherError):
    pass


class Forbidden(PublisherError):
    pass
