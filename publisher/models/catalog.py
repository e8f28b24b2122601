"""The catalogue of the organisation: disclosure domains and the departments responsible for
them (seed data, extended at run time), with each domain's review stages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from publisher.models.base import (
    Base,
    utcnow,
)

DEFAULT_REVIEW_STAGES = ("初审", "终审")


class Domain(Base):
    __tablename__ = "domains"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    catecode: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The review stages an item of this domain passes before it publishes, in order (0–3).
    review_stages: Mapped[list[str]] = mapped_column(default=lambda: list(DEFAULT_REVIEW_STAGES))
    # Item fields this domain requires before publishing (e.g. "doc_number" for documents).
    required_metadata: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    departments: Mapped[list[Department]] = relationship(
        secondary="domain_departments", order_by="Department.code", lazy="selectin"
    )


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DomainDepartment(Base):
    __tablename__ = "domain_departments"

    domain_code: Mapped[str] = mapped_column(ForeignKey("domains.code"), primary_key=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), primary_key=True)
