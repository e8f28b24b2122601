"""Run-time widening of the disclosure scope: domains and departments (docs/protocols.md §3).

The policy asks for a "dynamic expansion" mechanism, so new domains and departments are rows,
added by an admin and usable at once. So are a domain's review stages (0–3, in order; none:
items publish without review) and the item fields it requires before publishing. Services
never commit; every change is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.errors import FieldProblem, InvalidInput, NotFound
from publisher.i18n import t
from publisher.models import DEFAULT_REVIEW_STAGES, Department, Domain, DomainDepartment

CODE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CATECODE_RE = re.compile(r"^\d{4}$")  # the catalogue protocol (docs/protocols.md) takes 4 digits
MAX_REVIEW_STAGES = 3
STAGE_NAME_MAX = 32  # approvals.stage_name
# The item fields a domain may require before publishing (title, body and formed_on always
# are): the pre-publish checks report each one missing (`missing_metadata`).
REQUIRABLE_FIELDS = ("summary", "short_title", "doc_number", "keywords", "cover_image")


@dataclass
class DomainChanges:
    """A partial update of a domain; None means "unchanged"."""

    name: str | None = None
    catecode: str | None = None
    departments: list[str] | None = None
    active: bool | None = None
    review_stages: list[str] | None = None  # [] = publish without review
    required_metadata: list[str] | None = None


def domain_view(domain: Domain) -> dict[str, Any]:
    return {
        "code": domain.code,
        "name": domain.name,
        "catecode": domain.catecode,
        "active": domain.active,
        "departments": [department.code for department in domain.departments],
        "review_stages": list(domain.review_stages or []),
        "required_metadata": list(domain.required_metadata or []),
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
            problems.append(
                FieldProblem(
                    "departments", "known", f"unknown department {code!r}", values={"value": code}
                )
            )


def _check_name(name: str | None, problems: list[FieldProblem]) -> None:
    if name is not None and not (0 < len(name.strip()) <= 64):
        problems.append(
            FieldProblem(
                "name", "required", "name must be 1 to 64 characters", values={"limit": 64}
            )
        )


def _check_review(
    stages: list[str] | None, required: list[str] | None, problems: list[FieldProblem]
) -> None:
    """0–3 distinct stage names of 1–32 characters; required fields among
    `REQUIRABLE_FIELDS`."""
    if stages is not None:
        if len(stages) > MAX_REVIEW_STAGES:
            problems.append(
                FieldProblem(
                    "review_stages",
                    "max_items",
                    f"at most {MAX_REVIEW_STAGES} review stages (0: publish without review)",
                    values={"limit": MAX_REVIEW_STAGES},
                )
            )
        if any(not (0 < len(name.strip()) <= STAGE_NAME_MAX) for name in stages):
            problems.append(
                FieldProblem(
                    "review_stages",
                    "name",
                    f"each stage needs a name of 1 to {STAGE_NAME_MAX} characters",
                    values={"limit": STAGE_NAME_MAX},
                )
            )
        elif len({name.strip() for name in stages}) != len(stages):
            problems.append(
                FieldProblem("review_stages", "unique", "stage names must differ from each other")
            )
    for name in required or []:
        if name not in REQUIRABLE_FIELDS:
            problems.append(
                FieldProblem(
                    "required_metadata",
                    "known",
                    f"unknown item field {name!r}; one of {', '.join(REQUIRABLE_FIELDS)}",
                    values={"value": name, "choices": list(REQUIRABLE_FIELDS)},
                )
            )


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
        problems.append(
            FieldProblem(
                "code", "unique", f"{what} {code!r} already exists", values={"value": code}
            )
        )


def add_domain(
    session: Session,
    *,
    code: str,
    name: str,
    catecode: str,
    departments: list[str],
    actor: str,
    review_stages: list[str] | None = None,
    required_metadata: list[str] | None = None,
) -> Domain:
    """A new disclosure domain with its responsible departments, review stages (default
    初审, 终审) and required fields. Raises `InvalidInput`."""
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
    _check_review(review_stages, required_metadata, problems)
    if problems:
        raise InvalidInput(problems)
    domain = Domain(
        code=code,
        name=name.strip(),
        catecode=catecode,
        active=True,
        review_stages=[s.strip() for s in review_stages]
        if review_stages is not None
        else list(DEFAULT_REVIEW_STAGES),
        required_metadata=list(dict.fromkeys(required_metadata or [])),
    )
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
        review_stages=domain.review_stages,
        required_metadata=domain.required_metadata,
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
    """Change a domain's name, catecode, departments, active flag, review stages or required
    fields. Raises `NotFound`, `InvalidInput`.

    New stages apply to what is reviewed from now on: an approval counts for the stage of its
    name, so an item half-way through review keeps the stages it passed that still exist."""
    domain = session.get(Domain, code)
    if domain is None:
        raise NotFound(f"domain {code!r} does not exist", zh=t("refusal.no_domain", code=code))
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
    _check_review(changes.review_stages, changes.required_metadata, problems)
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
    if changes.review_stages is not None:
        details["review_stages_before"] = list(domain.review_stages or [])
        domain.review_stages = [name.strip() for name in changes.review_stages]
    if changes.required_metadata is not None:
        details["required_metadata_before"] = list(domain.required_metadata or [])
        domain.required_metadata = list(dict.fromkeys(changes.required_metadata))
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
