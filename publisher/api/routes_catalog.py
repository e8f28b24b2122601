"""Disclosure domains and departments: read by all, widened at run time by admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, status

from publisher.api.routes_common import READERS, database_of, requires
from publisher.api.schemas import DepartmentIn, DomainIn, DomainPatch
from publisher.auth import Principal
from publisher.services import scope as admin

router = APIRouter(tags=["domains"])


@router.get("/domains")
def list_domains(request: Request, _: Principal = Depends(requires(*READERS))) -> dict[str, Any]:
    with database_of(request).session() as session:
        return {"domains": [admin.domain_view(d) for d in admin.list_domains(session)]}


@router.post("/domains", status_code=status.HTTP_201_CREATED)
def add_domain(
    body: DomainIn, request: Request, who: Principal = Depends(requires())
) -> dict[str, Any]:
    """A new domain with its responsible departments, usable at once (admin only)."""
    with database_of(request).session() as session:
        domain = admin.add_domain(session, **body.model_dump(), actor=who.actor)
        return admin.domain_view(domain)


@router.patch("/domains/{code}")
def update_domain(
    code: str, body: DomainPatch, request: Request, who: Principal = Depends(requires())
) -> dict[str, Any]:
    """Rename, recode, re-assign departments, deactivate a domain, or set its review stages
    (0–3 names, in order) and the item fields it requires before publishing (admin only)."""
    with database_of(request).session() as session:
        changes = admin.DomainChanges(**body.model_dump())
        return admin.domain_view(admin.update_domain(session, code, changes, actor=who.actor))


@router.get("/departments")
def list_departments(
    request: Request, _: Principal = Depends(requires(*READERS))
) -> dict[str, Any]:
    with database_of(request).session() as session:
        return {"departments": [admin.department_view(d) for d in admin.list_departments(session)]}


@router.post("/departments", status_code=status.HTTP_201_CREATED)
def add_department(
    body: DepartmentIn, request: Request, who: Principal = Depends(requires())
) -> dict[str, Any]:
    """A new department (admin only); link it to domains with PATCH /domains/{code}."""
    with database_of(request).session() as session:
        department = admin.add_department(session, code=body.code, name=body.name, actor=who.actor)
        return admin.department_view(department)
