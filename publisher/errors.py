"""Errors of the canonical store and its services.

PublisherError
├── InvalidInput      bad input: one or more (field, rule, message); HTTP 422, CLI exit 2
├── NotFound          the named object does not exist; HTTP 404
├── Conflict          the request contradicts the object's state; HTTP 409
└── Forbidden         the caller's role or department does not allow it; HTTP 403
"""

from __future__ import annotations

from dataclasses import dataclass


class PublisherError(Exception):
    pass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    rule: str
    message: str
    channel: str | None = None


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
