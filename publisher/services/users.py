"""People: users with a role (and departments for editors and reviewers), their passwords,
their API tokens, and signing in.

Passwords are hashed with argon2id (argon2-cffi's `PasswordHasher`, its RFC 9106 defaults);
a hash made with older parameters is replaced at the next successful sign-in. Tokens are
issued by `publisher.auth`; here they are listed, made for a named user and revoked by their
owner or an admin. Every change is audited; no password or token ever reaches the audit
trail. Services never commit.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from channels.base import SharedStore
from publisher.audit import audit
from publisher.auth import DEFAULT_TOKEN_DAYS, forget_cached_tokens, issue_token
from publisher.errors import FieldProblem, Forbidden, InvalidInput, NotFound
from publisher.i18n import t
from publisher.i18n.refusals import role_name
from publisher.models import DEPARTMENT_ROLES, ApiToken, Department, Role, User, utcnow

PASSWORDS = PasswordHasher()  # argon2id
MIN_PASSWORD_LENGTH = 12
# argon2 hashes any length; a megabyte-long "password" would only cost us CPU.
MAX_PASSWORD_LENGTH = 1024
# Letters (Chinese names included), digits, `.`, `_`, `-`: no spaces or colons, so that no
# user can be mistaken for the CLI's actors (`cli:root as 张三`) in the audit trail.
NAME_RE = re.compile(r"^[\w.-]{1,32}$")
RESERVED_NAMES = frozenset({"anonymous", "bootstrap", "cli", "demo", "reconcile", "system"})
MAX_TOKEN_DAYS = 3650

LOGIN_TOKEN_LIFETIME = timedelta(hours=12)
LOGIN_TOKEN_LABEL = "login"
# Sign-in attempts (successful or not) allowed per window: per user name, against guessing
# one password; per client address, against trying many names (an office behind one NAT
# signs in from one address, hence the wider allowance).
LOGIN_WINDOW_SECONDS = 300.0
LOGIN_ATTEMPTS_PER_USER = 10
LOGIN_ATTEMPTS_PER_ADDRESS = 100


# --- users -------------------------------------------------------------------------------------


def user_view(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "role": user.role.value,
        "departments": [d.code for d in user.departments],
        "password_set": user.password_hash is not None,
        "created_by": user.created_by,
        "created_at": _iso(user.created_at),
        "disabled_at": _iso(user.disabled_at),
    }


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def find_user(session: Session, name: str) -> User | None:
    found: User | None = session.scalars(select(User).where(User.name == name)).first()
    return found


def get_user(session: Session, name: str) -> User:
    """The user called `name`. Raises `NotFound`."""
    user = find_user(session, name)
    if user is None:
        raise NotFound(f"no user called {name!r}", zh=t("refusal.no_user", name=name))
    return user


def create_user(
    session: Session,
    *,
    name: str,
    role: Role | str,
    departments: Sequence[str] = (),
    password: str | None = None,
    actor: str,
    client_address: str | None = None,
) -> User:
    """A new user. Editors and reviewers need at least one department; other roles take
    none. Without a password the user signs in with API tokens only.

    Raises `InvalidInput` naming each bad field and rule (nothing is stored).
    """
    problems: list[FieldProblem] = []
    _check_name(session, name, problems)
    known = _check_role(role, problems)
    codes = list(dict.fromkeys(departments))  # repeated codes count once
    if known is not None:
        if known in DEPARTMENT_ROLES and not codes:
            problems.append(
                FieldProblem("departments", "required", f"a {known} needs at least one department")
            )
        if known not in DEPARTMENT_ROLES and codes:
            problems.append(
                FieldProblem(
                    "departments",
                    "not_allowed",
                    f"only editors and reviewers are bound to departments, not a {known}",
                    values={"role": role_name(known.value)},
                )
            )
    found = _departments(session, codes, problems)
    if password is not None:
        _check_password(password, problems)
    if problems or known is None:
        raise InvalidInput(problems)
    user = User(
        name=name,
        role=known,
        password_hash=None if password is None else PASSWORDS.hash(password),
        created_by=actor,
    )
    user.departments = found
    session.add(user)
    session.flush()
    audit(
        session,
        actor,
        "user.create",
        f"user:{name}",
        client_address=client_address,
        role=known.value,
        departments=codes,
        password_set=password is not None,
    )
    return user


def set_password(
    session: Session, name: str, password: str, *, actor: str, client_address: str | None = None
) -> User:
    """Replace a user's password. Raises `NotFound`, `InvalidInput`."""
    user = get_user(session, name)
    problems: list[FieldProblem] = []
    _check_password(password, problems)
    if problems:
        raise InvalidInput(problems)
    user.password_hash = PASSWORDS.hash(password)
    audit(session, actor, "user.password", f"user:{name}", client_address=client_address)
    return user


def disable_user(
    session: Session, name: str, *, actor: str, client_address: str | None = None
) -> User:
    """Disable a user: their tokens and sign-in are refused from now on (other API
    processes within `TOKEN_CACHE_SECONDS`). Raises `NotFound`."""
    user = get_user(session, name)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
        audit(session, actor, "user.disable", f"user:{name}", client_address=client_address)
    forget_cached_tokens()
    return user


def generate_password() -> str:
    """A random password of 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


@cache
def _dummy_hash() -> str:
    return PASSWORDS.hash(secrets.token_urlsafe(12))


def verify_password(session: Session, name: str, password: str) -> User | None:
    """The enabled user `name` if `password` is theirs, else None; takes as long whether
    or not the user exists. A hash made with older parameters is replaced."""
    user, _ = _verify(session, name, password)
    return user


def _verify(session: Session, name: str, password: str) -> tuple[User | None, str]:
    """(the user, "ok") or (None, why not: for the audit trail, never for the caller)."""
    user = find_user(session, name) if len(name) <= 64 else None
    stored = user.password_hash if user is not None else None
    try:
        # Verify against a throw-away hash when there is nothing to verify against, so
        # that the answer takes as long for a name that does not exist.
        PASSWORDS.verify(stored or _dummy_hash(), password[:MAX_PASSWORD_LENGTH])
        matched = stored is not None
    except (VerificationError, InvalidHashError):
        matched = False
    if user is None:
        return None, "unknown user"
    if stored is None:
        return None, "no password set"
    if not matched:
        return None, "wrong password"
    if user.disabled_at is not None:
        return None, "user disabled"
    if PASSWORDS.check_needs_rehash(stored):
        user.password_hash = PASSWORDS.hash(password)
    return user, "ok"


def seed_demo_users(
    session: Session, *, department: str = "sgj", actor: str = "demo"
) -> list[tuple[User, str]]:
    """One user per role for the sandbox demo (`make run`), named after the role, editor and
    reviewer bound to `department`; each gets a new random password, returned with it (to
    print once). Never call this against real channels."""
    made = []
    for role in Role:
        password = generate_password()
        user = find_user(session, role.value)
        if user is None:
            codes = [department] if role in DEPARTMENT_ROLES else []
            user = create_user(
                session,
                name=role.value,
                role=role,
                departments=codes,
                password=password,
                actor=actor,
            )
        else:
            set_password(session, user.name, password, actor=actor)
        made.append((user, password))
    return made


def _check_name(session: Session, name: str, problems: list[FieldProblem]) -> None:
    if not NAME_RE.match(name or ""):
        problems.append(
            FieldProblem(
                "name",
                "format",
                "a user name is 1 to 32 letters, digits, '.', '_' or '-' (no spaces)",
            )
        )
    elif name.lower() in RESERVED_NAMES:
        problems.append(
            FieldProblem(
                "name", "reserved", f"{name!r} names a system actor", values={"value": name}
            )
        )
    elif find_user(session, name) is not None:
        problems.append(
            FieldProblem(
                "name", "unique", f"a user called {name!r} exists already", values={"value": name}
            )
        )


def _check_role(role: Role | str, problems: list[FieldProblem]) -> Role | None:
    try:
        return Role(role)
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
        return None


def _departments(
    session: Session, codes: Iterable[str], problems: list[FieldProblem]
) -> list[Department]:
    found = []
    for code in codes:
        department = session.get(Department, code)
        if department is None:
            problems.append(
                FieldProblem(
                    "departments", "known", f"unknown department {code!r}", values={"value": code}
                )
            )
        else:
            found.append(department)
    return found


def _check_password(password: str, problems: list[FieldProblem]) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(
            FieldProblem(
                "password",
                "min_length",
                f"a password needs at least {MIN_PASSWORD_LENGTH} characters",
                values={"limit": MIN_PASSWORD_LENGTH},
            )
        )
    elif len(password) > MAX_PASSWORD_LENGTH:
        problems.append(
            FieldProblem(
                "password",
                "max_length",
                f"a password has at most {MAX_PASSWORD_LENGTH} characters",
                values={"limit": MAX_PASSWORD_LENGTH},
            )
        )


# --- tokens ------------------------------------------------------------------------------------


def token_view(row: ApiToken, *, now: datetime | None = None) -> dict[str, Any]:
    """A token as its owner and admins see it: never its hash, only a short prefix."""
    now = now or utcnow()
    active = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    return {
        "id": row.id,
        "user": row.user.name,
        "role": row.user.role.value,
        "label": row.label,
        "prefix": row.prefix,
        "created_at": _iso(row.created_at),
        "expires_at": _iso(row.expires_at),
        "last_used_at": _iso(row.last_used_at),
        "revoked_at": _iso(row.revoked_at),
        "active": active and row.user.disabled_at is None,
    }


def list_tokens(
    session: Session, *, user_id: int | None = None, include_inactive: bool = False
) -> list[ApiToken]:
    """Tokens, newest first: of one user when `user_id` is given, else every user's;
    revoked and expired ones only with `include_inactive`."""
    stmt = select(ApiToken).order_by(ApiToken.id.desc())
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    if not include_inactive:
        stmt = stmt.where(
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()),
        )
    return list(session.scalars(stmt))


def create_user_token(
    session: Session,
    name: str,
    *,
    label: str | None = None,
    expires_days: int = DEFAULT_TOKEN_DAYS,
    actor: str,
    client_address: str | None = None,
) -> str:
    """A new token of the user `name`; returns the plaintext (the only time it exists).
    Raises `NotFound`, `InvalidInput` (expiry out of range, user disabled)."""
    user = get_user(session, name)
    problems = []
    if not 1 <= expires_days <= MAX_TOKEN_DAYS:
        problems.append(
            FieldProblem(
                "expires_days",
                "range",
                f"a token lasts 1 to {MAX_TOKEN_DAYS} days",
                values={"min": 1, "max": MAX_TOKEN_DAYS},
            )
        )
    if user.disabled_at is not None:
        problems.append(
            FieldProblem("user", "enabled", f"user {name!r} is disabled", values={"value": name})
        )
    if problems:
        raise InvalidInput(problems)
    plaintext = issue_token(session, user, label, expires_days=expires_days)
    audit(
        session,
        actor,
        "token.create",
        f"user:{name}",
        client_address=client_address,
        label=label,
        expires_days=expires_days,
    )
    return plaintext


def revoke_user_token(
    session: Session,
    token_id: int,
    *,
    owner_id: int | None,
    actor: str,
    client_address: str | None = None,
) -> ApiToken:
    """Revoke token `token_id`; `owner_id` (None: an admin, any token) must own it.
    Refused at once in this process, within `TOKEN_CACHE_SECONDS` in the others.
    Raises `NotFound`, `Forbidden`."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} does not exist", zh=t("refusal.no_token", id=token_id))
    if owner_id is not None and row.user_id != owner_id:
        raise Forbidden(
            f"token {token_id} is not yours; only its owner or an admin revokes it",
            zh=t("refusal.token_not_yours", id=token_id),
        )
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit(
            session,
            actor,
            "token.revoke",
            f"token:{token_id}",
            client_address=client_address,
            user=row.user.name,
        )
    forget_cached_tokens()
    return row


# --- signing in --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str
    expires_at: datetime


def login_wait(store: SharedStore, name: str, client_address: str | None) -> float | None:
    """Count a sign-in attempt against its user name and its client address; the seconds to
    wait when either has had its allowance in this window, else None."""
    # The name is hashed: keys hold no typed text (a password typed in the name box).
    key = hashlib.sha256(name.strip().casefold().encode()).hexdigest()[:24]
    waits = [
        store.take_slot(f"login:user:{key}", LOGIN_ATTEMPTS_PER_USER, LOGIN_WINDOW_SECONDS),
        store.take_slot(
            f"login:address:{client_address or '-'}",
            LOGIN_ATTEMPTS_PER_ADDRESS,
            LOGIN_WINDOW_SECONDS,
        ),
    ]
    found = [w for w in waits if w is not None]
    return float(math.ceil(max(found))) if found else None


def login(
    session: Session, name: str, password: str, *, client_address: str | None = None
) -> SignedIn | None:
    """A short-lived token (`LOGIN_TOKEN_LIFETIME`) of the user if the password is theirs;
    None otherwise, the failure audited (why, but never the password)."""
    user, why = _verify(session, name, password)
    if user is None:
        # The typed name is recorded only when it names a user: an unknown "name" may be a
        # password typed in the wrong box.
        known = find_user(session, name) is not None
        audit(
            session,
            "anonymous",
            "auth.login_failed",
            f"user:{name}"[:64] if known else "user:?",
            client_address=client_address,
            reason=why,
        )
        return None
    token = issue_token(session, user, LOGIN_TOKEN_LABEL, expires_in=LOGIN_TOKEN_LIFETIME)
    audit(session, user.name, "auth.login", f"user:{user.name}", client_address=client_address)
    return SignedIn(user, token, utcnow() + LOGIN_TOKEN_LIFETIME)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
