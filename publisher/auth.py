"""Bearer tokens and roles.

Tokens are random, shown once, and stored only as their SHA-256 (with a short prefix so an
operator can tell them apart). `PUBLISHER_BOOTSTRAP_TOKEN` is accepted as an admin token so a
fresh installation can create the first real ones.

Roles (docs/architecture.md): admin does everything; an editor writes items (of their own department
when the token names one); an operator runs deliveries and channels; a supervisor reads.

The API knows its callers through a short per-process cache (`cached_principal`, filled by
`look_up_principal`): a revoked token is refused at once by the process that revoked it and
within `TOKEN_CACHE_SECONDS` by every other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.config import Settings
from publisher.db import Database
from publisher.errors import FieldProblem, Forbidden, InvalidInput
from publisher.models import DEPARTMENT_ROLES, ApiToken, Department, Role, User, utcnow

TOKEN_PREFIX = "pub_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: their role, departments (editors and reviewers are bound to theirs)
    and the name the audit trail records."""

    role: Role
    departments: tuple[str, ...]
    actor: str
    user_id: int | None = None

    @property
    def department(self) -> str | None:
        """The first of the caller's departments (None: not bound to any)."""
        return self.departments[0] if self.departments else None

    def require(self, *roles: Role) -> None:
        """Raise `Forbidden` naming the roles needed unless this caller has one (or is admin)."""
        if self.role == Role.ADMIN or self.role in roles:
            return
        needed = " or ".join(r.value for r in (Role.ADMIN, *roles))
        raise Forbidden(f"this needs the role {needed}; your token has the role {self.role.value}")

    def require_department(self, department: str) -> None:
        """Editors bound to a department may only touch that department's items."""
        if self.role in DEPARTMENT_ROLES and department not in self.departments:
            raise Forbidden(
                f"this item belongs to department {department!r}; "
                f"your account is limited to {', '.join(self.departments) or 'no department'}"
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
    # A user made on the fly for the token (`token create --role`).
    user = User(name=f"{Role(role).value}-{secrets.token_hex(4)}", role=Role(role))
    if department is not None:
        user.departments = [session.get(Department, department)]  # type: ignore[list-item]
    session.add(user)
    session.flush()
    return issue_token(session, user, label)


def issue_token(
    session: Session, user: User, label: str | None = None, *, expires_days: int = 90
) -> str:
    """A new token of `user`; stores its hash and returns the plaintext (the only time it
    exists)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_hash=hash_token(token),
            prefix=token[: len(TOKEN_PREFIX) + 6],
            user_id=user.id,
            label=label,
            expires_at=utcnow() + timedelta(days=expires_days),
        )
    )
    session.flush()
    return token


def _is_bootstrap(settings: Settings, token: str) -> bool:
    return bool(settings.bootstrap_token) and hmac.compare_digest(
        token.encode(), (settings.bootstrap_token or "").encode()
    )


def _lookup(session: Session, token_hash: str) -> tuple[Principal, float] | None:
    """The principal of a stored, unrevoked token and the seconds until its revocation is due
    (infinite when none is set)."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()
    if row is None or row.user.disabled_at is not None:
        return None
    due = float("inf")
    for ends in (row.revoked_at, row.expires_at):
        if ends is not None:
            due = min(due, (ends - utcnow()).total_seconds())
    if due <= 0:
        return None
    user = row.user
    departments = tuple(d.code for d in user.departments)
    return Principal(user.role, departments, user.name, user.id), due


# How long a process goes on accepting a token it has looked up, without asking the database:
# the longest a revoked token is still accepted by another process.
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_CACHE_MAX = 10_000
# (database URL, token hash) → (monotonic expiry, principal). Only known tokens are kept: an
# unknown one is looked up each time, so that a token created a moment ago works at once.
_cache: dict[tuple[str, str], tuple[float, Principal]] = {}
_cache_lock = threading.Lock()
_now = time.monotonic


def cached_principal(settings: Settings, database: Database, token: str) -> Principal | None:
    """The caller `token` names, from the per-process cache when it was looked up in the last
    `TOKEN_CACHE_SECONDS`; `None` on a miss (then ask `look_up_principal`)."""
    if not token:
        return None
    if _is_bootstrap(settings, token):
        return Principal(Role.ADMIN, (), "bootstrap")
    hit = _cache.get((database.url, hash_token(token)))
    if hit is not None and hit[0] > _now():
        return hit[1]
    return None


def look_up_principal(settings: Settings, database: Database, token: str) -> Principal | None:
    """The caller `token` names, or None when it is unknown or revoked, read in a transaction
    of its own; a known token is remembered for `TOKEN_CACHE_SECONDS` (or until its
    revocation is due, if sooner)."""
    if not token:
        return None
    if _is_bootstrap(settings, token):
        return Principal(Role.ADMIN, (), "bootstrap")
    key = (database.url, hash_token(token))
    with database.session() as session:
        found = _lookup(session, key[1])
    if found is None:
        return None
    principal, due = found
    with _cache_lock:
        if len(_cache) >= _TOKEN_CACHE_MAX:
            _cache.clear()
        _cache[key] = (_now() + min(TOKEN_CACHE_SECONDS, due), principal)
    return principal


def forget_cached_tokens() -> None:
    with _cache_lock:
        _cache.clear()


def revoke_token(session: Session, token_id: int) -> None:
    """Revoke a token: refused at once here, within `TOKEN_CACHE_SECONDS` by other processes."""
    row = session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    forget_cached_tokens()
