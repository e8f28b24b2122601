"""Request bodies of the REST API (docs/architecture.md, Stable interfaces: extend, do not break).

Pydantic checks shapes and types; the services check meaning (known domain, responsible
department, dates, sizes) and their problems come back in the same 422 shape.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from channels.registry import KINDS
from publisher.services.items import ItemFields


class _ItemBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def fields(self) -> ItemFields:
        return ItemFields(**self.model_dump())


class ItemIn(_ItemBody):
    """A new item. Give `body_html` or `body_markdown`; `push` absent/null = no push,
    `[]` = every follower, else WeChat tag ids."""

    title: str
    body_html: str | None = None
    body_markdown: str | None = None
    summary: str | None = None
    short_title: str | None = None
    domain: str
    department: str
    doc_number: str | None = None
    formed_on: date
    keywords: list[str] | None = None
    cover_image: str | None = Field(default=None, description="URL, or the url of POST /media")
    channels: list[str] | None = Field(default=None, description="default: every enabled one")
    push: list[str] | None = None
    urgent: bool = False


class ItemPatch(_ItemBody):
    """Changed fields only; the result is a new revision."""

    title: str | None = None
    body_html: str | None = None
    body_markdown: str | None = None
    summary: str | None = None
    short_title: str | None = None
    domain: str | None = None
    department: str | None = None
    doc_number: str | None = None
    formed_on: date | None = None
    keywords: list[str] | None = None
    cover_image: str | None = None
    channels: list[str] | None = None
    push: list[str] | None = None
    urgent: bool | None = None


class ReasonIn(BaseModel):
    """An optional reason for an operator's or editor's action (retract, cancel, pause)."""

    reason: str | None = None


ChannelKind = enum.StrEnum("ChannelKind", {kind.upper(): kind for kind in KINDS})  # type: ignore[misc]


class FreezeIn(BaseModel):
    reason: str = Field(min_length=1, description="why publishing is frozen (shown to everyone)")


class CredentialsIn(BaseModel):
    access_token: str = Field(min_length=1, json_schema_extra={"writeOnly": True})


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    name: str
    catecode: str
    departments: list[str]
    review_stages: list[str] | None = Field(
        default=None, description="0–3 stage names, in order; default 初审, 终审"
    )
    required_metadata: list[str] | None = None


class DomainPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    catecode: str | None = None
    departments: list[str] | None = None
    active: bool | None = None
    review_stages: list[str] | None = Field(
        default=None, description="0–3 stage names, in order ([] = publish without review)"
    )
    required_metadata: list[str] | None = Field(
        default=None, description="item fields required before publishing, e.g. doc_number"
    )


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = None


class SendBackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(description="why the item goes back to its editor (required)")


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    name: str


class MediaOut(BaseModel):
    url: str
    sha256: str
    content_type: str


JSON = dict[str, Any]
