"""Run-time widening of the disclosure scope: domains and departments (docs/protocols.md §3).

The policy asks for a "dynamic expansion" mechanism, so new domains and departments are rows,
added by an admin and usable at once. Services never commit; every change is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.errors import FieldProblem, InvalidInput, NotFound
from publisher.models import Department, Domain, DomainDepartment

CODE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CATECODE_RE = re.compile(r"^\d{4}$")  # the catalogue protocol (docs/protocols.md) takes 4 digits


@dataclass
class DomainChanges:
    """A partial update of a domain; None means "unchanged"."""

    name: str | None = None
    catecode: str | None = None
    departments: list[str] | None = None
    active: bool | None = None


def domain_view(domain: Domain) -> dict[str, Any]:
    return {
        "code": domain.code,
        "name": domain.name,
        "catecode": domain.catecode,
        "active": domain.active,
        "departments": [department.code for department in domain.departments],
    }


def department_view(department: Department) -> dict[str, Any]:
    return {"code": department.code, "name": department.name, "active": department.active}


def list_domains(session: Session) -> list[Domain]:
    return list(session.scalars(select(Domain).order_by(Domain.catecode, Domain.code)))


def list_departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.code)))


def _check_departments(session: Session, codes: list[str], problems: list[FieldProblem]) -> None:
    for code in codes:
        if session.get(Department, code) is None:
            problems.append(FieldProblem("departments", "known", f"unknown department {code!r}"))


def _check_name(name: str | None, problems: list[FieldProblem]) -> None:
    if name is not None and not (0 < len(name.strip()) <= 64):
        problems.append(FieldProblem("name", "required", "name must be 1 to 64 characters"))


def _check_new_code(
    session: Session,
    model: type[Domain] | type[Department],
    code: str,
    problems: list[FieldProblem],
) -> None:
    """A new domain's or department's code: well formed and not taken."""
    if not CODE_RE.match(code):
        problems.append(
            FieldProblem("code", "format", "code must be lowercase letters, digits, - or _")
        )
    elif session.get(model, code) is not None:
        what = "domain" if model is Domain else "department"
        problems.append(FieldProblem("code", "unique", f"{what} {code!r} already exists"))


def add_domain(
    session: Session,
    *,
    code: str,
    name: str,
    catecode: str,
    departments: list[str],
    actor: str,
) -> Domain:
    """A new disclosure domain with its responsible departments. Raises `InvalidInput`."""
    problems: list[FieldProblem] = []
    _check_new_code(session, Domain, code, problems)
    _check_name(name, problems)
    if not CATECODE_RE.match(catecode):
        problems.append(FieldProblem("catecode", "format", "catecode must be 4 digits (e.g. 0908)"))
    if not departments:
        problems.append(
            FieldProblem("departments", "required", "name at least one responsible department")
        )
    _check_departments(session, departments, problems)
    if problems:
        raise InvalidInput(problems)
    domain = Domain(code=code, name=name.strip(), catecode=catecode, active=True)
    session.add(domain)
    session.flush()
    _set_departments(session, domain, departments)
    audit(
        session,
        actor,
        "domain.add",
        f"domain:{code}",
        name=name,
        catecode=catecode,
        departments=departments,
    )
    return domain


def _set_departments(session: Session, domain: Domain, codes: list[str]) -> None:
    for link in session.scalars(
        select(DomainDepartment).where(DomainDepartment.domain_code == domain.code)
    ):
        session.delete(link)
    session.flush()
    for code in dict.fromkeys(codes):
        session.add(DomainDepartment(domain_code=domain.code, department_code=code))
    session.flush()
    session.refresh(domain, ["departments"])


def update_domain(session: Session, code: str, changes: DomainChanges, *, actor: str) -> Domain:
    """Change a domain's name, catecode, departments or active flag. Raises `NotFound`,
    `InvalidInput`."""
    domain = session.get(Domain, code)
    if domain is None:
        raise NotFound(f"domain {code!r} does not exist")
    problems: list[FieldProblem] = []
    _check_name(changes.name, problems)
    if changes.catecode is not None and not CATECODE_RE.match(changes.catecode):
        problems.append(FieldProblem("catecode", "format", "catecode must be 4 digits (e.g. 0908)"))
    if changes.departments is not None:
        if not changes.departments:
            problems.append(
                FieldProblem("departments", "required", "name at least one responsible department")
            )
        _check_departments(session, changes.departments, problems)
    if problems:
        raise InvalidInput(problems)
    if changes.name is not None:
        domain.name = changes.name.strip()
    if changes.catecode is not None:
        domain.catecode = changes.catecode
    if changes.active is not None:
        domain.active = changes.active
    if changes.departments is not None:
        _set_departments(session, domain, changes.departments)
    details = {k: v for k, v in vars(changes).items() if v is not None}
    audit(session, actor, "domain.update", f"domain:{code}", **details)
    return domain


def add_department(session: Session, *, code: str, name: str, actor: str) -> Department:
    """A new department (link it to domains with `update_domain`). Raises `InvalidInput`."""
    problems: list[FieldProblem] = []
    _check_new_code(session, Department, code, problems)
    _check_name(name, problems)
    if problems:
        raise InvalidInput(problems)
    department = Department(code=code, name=name.strip(), active=True)
    session.add(department)
    session.flush()
    audit(session, actor, "department.add", f"department:{code}", name=name)
    return department
