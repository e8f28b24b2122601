"""Bearer tokens and roles.

Tokens belong to users, are random, shown once, and stored only as their SHA-256 (with a short
prefix so an operator can tell them apart); they expire (90 days unless said otherwise) and
record when they were last used. `PUBLISHER_BOOTSTRAP_TOKEN` serves only to create the first
admin user: once an admin exists it is refused.

Roles (README, Security): admin does everything; editors write and reviewers review the items
of their own departments, and see nothing of other departments; an operator runs deliveries
and channels; a supervisor reads everything.

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

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from publisher.config import Settings
from publisher.db import Database
from publisher.errors import FieldProblem, Forbidden, InvalidInput
from publisher.i18n import t
from publisher.i18n.refusals import department_refusal, role_name
from publisher.models import DEPARTMENT_ROLES, ApiToken, Department, Role, User, utcnow

TOKEN_PREFIX = "pub_"
DEFAULT_TOKEN_DAYS = 90
# `last_used_at` is written at most this often per token: a write per request would make every
# read a write (and the per-process cache means most requests never reach the database).
LAST_USED_RESOLUTION = timedelta(minutes=1)
BOOTSTRAP_ACTOR = "bootstrap"
BOOTSTRAP_ONLY = (
    "the bootstrap token (PUBLISHER_BOOTSTRAP_TOKEN) serves only to create the first admin: "
    "POST /api/v1/users with the role admin"
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: their role, departments (editors and reviewers are bound to theirs)
    and the name the audit trail records."""

    role: Role
    departments: tuple[str, ...]
    actor: str
    user_id: int | None = None
    # The user's own name (None: the bootstrap token, or the CLI run without --as): what
    # the review rules compare ("nobody approves their own item").
    name: str | None = None
    # The bootstrap token: refused everywhere but where the first admin is created.
    bootstrap: bool = False

    @property
    def scope(self) -> tuple[str, ...] | None:
        """The departments whose items this caller may see (None: every department).
        Services and queries take it as their `scope` argument."""
        return self.departments if self.role in DEPARTMENT_ROLES else None

    def require(self, *roles: Role) -> None:
        """Raise `Forbidden` naming the roles needed unless this caller has one (or is admin)."""
        if self.bootstrap:
            raise Forbidden(BOOTSTRAP_ONLY, zh=t("refusal.bootstrap_only"))
        if self.role == Role.ADMIN or self.role in roles:
            return
        needed = " or ".join(r.value for r in (Role.ADMIN, *roles))
        raise Forbidden(
            f"this needs the role {needed}; your token has the role {self.role.value}",
            zh=t(
                "refusal.role",
                needed="或".join(f"{role_name(r)}（{r.value}）" for r in (Role.ADMIN, *roles)),
                role=f"{role_name(self.role)}（{self.role.value}）",
            ),
        )

    def require_department(self, department: str) -> None:
        """Editors bound to a department may only touch that department's items."""
        if self.role in DEPARTMENT_ROLES and department not in self.departments:
            raise Forbidden(
                f"this item belongs to department {department!r}; "
                f"your account is limited to {', '.join(self.departments) or 'no department'}",
                zh=department_refusal(department, self.departments),
            )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    role: Role | str,
    department: str | None = None,
    label: str | None = None,
    *,
    expires_days: int = DEFAULT_TOKEN_DAYS,
) -> str:
    """A token of a user made on the fly for it (`token create --role`): store its hash and
    return the plaintext (the only time it exists).

    Raises `InvalidInput` for an unknown role or department, or an editor or reviewer
    without one.
    """
    problems = []
    try:
        role = Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        problems.append(
            FieldProblem(
                "role",
                "known",
                f"unknown role {role!r}; known: {known}",
                values={"value": role, "choices": [r.value for r in Role]},
            )
        )
    if department is not None and session.get(Department, department) is None:
        problems.append(
            FieldProblem(
                "department",
                "known",
                f"unknown department {department!r}",
                values={"value": department},
            )
        )
    if role in DEPARTMENT_ROLES and department is None:
        # Editors and reviewers work for their departments (README: roles); one without a
        # department would see nothing at all.
        problems.append(
            FieldProblem("department", "required", f"a {role} token needs --department CODE")
        )
    if problems:
        raise InvalidInput(problems)
    # A user made on the fly for the token (`token create --role`).
    user = User(name=f"{Role(role).value}-{secrets.token_hex(4)}", role=Role(role))
    if department is not None:
        user.departments = [session.get(Department, department)]  # type: ignore[list-item]
    session.add(user)
    session.flush()
    return issue_token(session, user, label, expires_days=expires_days)


def issue_token(
    session: Session,
    user: User,
    label: str | None = None,
    *,
    expires_days: int = DEFAULT_TOKEN_DAYS,
    expires_in: timedelta | None = None,
) -> str:
    """A new token of `user`, valid for `expires_in` (default `expires_days` days); stores
    its hash and returns the plaintext (the only time it exists)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    lifetime = expires_in if expires_in is not None else timedelta(days=expires_days)
    session.add(
        ApiToken(
            token_hash=hash_token(token),
            prefix=token[: len(TOKEN_PREFIX) + 6],
            user_id=user.id,
            label=label,
            expires_at=utcnow() + lifetime,
        )
    )
    session.flush()
    return token


def _is_bootstrap(settings: Settings, token: str) -> bool:
    return bool(settings.bootstrap_token) and hmac.compare_digest(
        token.encode(), (settings.bootstrap_token or "").encode()
    )


def _lookup(session: Session, token_hash: str) -> tuple[Principal, float] | None:
    """The principal of a stored, unrevoked, unexpired token of an enabled user, and the
    seconds until its revocation or expiry is due (infinite when none is set). Records the
    use (`last_used_at`), at most once per `LAST_USED_RESOLUTION`."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()
    if row is None or row.user.disabled_at is not None:
        return None
    now = utcnow()
    due = float("inf")
    for ends in (row.revoked_at, row.expires_at):
        if ends is not None:
            due = min(due, (ends - now).total_seconds())
    if due <= 0:
        return None
    stale = row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION
    if stale:  # the row just read says whether a write is due: most look-ups write nothing
        # Conditional, so that processes looking the same token up at once write it once.
        session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == row.id,
                or_(
                    ApiToken.last_used_at.is_(None),
                    ApiToken.last_used_at < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    user = row.user
    departments = tuple(d.code for d in user.departments)
    return Principal(user.role, departments, user.name, user.id, name=user.name), due


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
        return BOOTSTRAP_PRINCIPAL
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
        return BOOTSTRAP_PRINCIPAL
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


BOOTSTRAP_PRINCIPAL = Principal(Role.ADMIN, (), BOOTSTRAP_ACTOR, bootstrap=True)
# Database URLs known to hold an admin user: the bootstrap token is refused there for good
# (admins are never deleted), without asking the database again.
_admin_exists: set[str] = set()


def admin_exists(session: Session) -> bool:
    found = session.scalars(select(User.id).where(User.role == Role.ADMIN).limit(1)).first()
    return found is not None


def bootstrap_refusal(database: Database) -> str | None:
    """Why the bootstrap token is no longer accepted (an admin user exists), or None while
    it may still create the first admin."""
    if database.url not in _admin_exists:
        with database.session() as session:
            if not admin_exists(session):
                return None
        _admin_exists.add(database.url)
    return (
        "an admin user exists: the bootstrap token (PUBLISHER_BOOTSTRAP_TOKEN) is no longer "
        "accepted; sign in (POST /api/v1/login) or use a token of an admin "
        "(`publisher token create --user NAME`), and unset the variable"
    )
