"""Bearer tokens and roles.

Tokens are random, shown once, and stored only as their SHA-256 (with a short prefix so an
operator can tell them apart). `PUBLISHER_BOOTSTRAP_TOKEN` is accepted as an admin token so a
fresh installation can create the first real ones.

Roles (DESIGN §1): admin does everything; an editor writes items (of their own department
when the token names one); an operator runs deliveries and channels; a supervisor reads.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.config import Settings
from publisher.errors import FieldProblem, Forbidden, InvalidInput
from publisher.models import ApiToken, Department, Role, utcnow

TOKEN_PREFIX = "pub_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: their role, department (editors may be limited to one) and audit name."""

    role: Role
    department: str | None
    actor: str

    def require(self, *roles: Role) -> None:
        """Raise `Forbidden` naming the roles needed unless this caller has one (or is admin)."""
        if self.role == Role.ADMIN or self.role in roles:
            return
        needed = " or ".join(r.value for r in (Role.ADMIN, *roles))
        raise Forbidden(f"this needs the role {needed}; your token has the role {self.role.value}")

    def require_department(self, department: str) -> None:
        """Editors bound to a department may only touch that department's items."""
        if self.role == Role.EDITOR and self.department and self.department != department:
            raise Forbidden(
                f"this item belongs to department {department!r}; "
                f"your token is limited to {self.department!r}"
            )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, role: Role | str, department: str | None = None, label: str | None = None
) -> str:
    """Store a new token's hash and return the plaintext (the only time it exists).

    Raises `InvalidInput` for an unknown role or department, or an editor without one.
    """
    problems = []
    try:
        role = Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        problems.append(FieldProblem("role", "known", f"unknown role {role!r}; known: {known}"))
    if department is not None and session.get(Department, department) is None:
        problems.append(FieldProblem("department", "known", f"unknown department {department!r}"))
    if role == Role.EDITOR and department is None:
        # An editor writes for one department (README: roles); a department-less editor
        # would be an unrestricted one.
        problems.append(
            FieldProblem("department", "required", "an editor token needs --department CODE")
        )
    if problems:
        raise InvalidInput(problems)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_hash=hash_token(token),
            prefix=token[: len(TOKEN_PREFIX) + 6],
            role=Role(role),
            department_code=department,
            label=label,
        )
    )
    session.flush()
    return token


def authenticate(session: Session, settings: Settings, token: str) -> Principal | None:
    """The principal for `token`, or None when it is unknown or revoked."""
    if not token:
        return None
    if settings.bootstrap_token and hmac.compare_digest(
        token.encode(), settings.bootstrap_token.encode()
    ):
        return Principal(Role.ADMIN, None, "bootstrap")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or (row.revoked_at is not None and row.revoked_at <= utcnow()):
        return None
    return Principal(row.role, row.department_code, f"token:{row.prefix}")


def revoke_token(session: Session, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
