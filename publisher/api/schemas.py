"""Request bodies of the REST API (docs/architecture.md, Stable interfaces: extend, do not break).

Pydantic checks shapes and types, and bounds every text and list (`publisher.services.limits`);
the services check meaning (known domain, responsible department, dates, sizes, the characters
of titles) and their problems come back in the same 422 shape. An item's fields are bounded by
the service, which the CLI shares; here only where the service sets no limit of its own.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from channels.registry import KINDS
from publisher.services.items import ItemFields
from publisher.services.limits import (
    CHANNELS_MAX,
    CODE_MAX,
    CODES_MAX,
    NAME_MAX,
    REASON_MAX,
    REMOTE_ID_MAX,
    TOKEN_MAX,
    URL_MAX,
    unsafe_character,
    unsafe_characters,
)


def _plain(text: str) -> str:
    """No control or bidi override characters (a name must read as it is stored). Refused
    as pydantic's `value_error`, its ctx carrying the rule and the character for the
    Chinese message (`publisher.i18n.problems.zh_pydantic`)."""
    message = unsafe_characters(text)
    if message:
        context = {"error": message, "rule": "characters", "codepoint": unsafe_character(text)}
        raise PydanticCustomError("value_error", "Value error, {error}", context)
    return text


Code = Annotated[str, StringConstraints(max_length=CODE_MAX)]
Name = Annotated[str, StringConstraints(max_length=NAME_MAX), AfterValidator(_plain)]
Reason = Annotated[str, StringConstraints(max_length=REASON_MAX)]


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
    short_titles: dict[str, str] | None = Field(
        default=None,
        max_length=CHANNELS_MAX,
        description="a short title per channel kind (wechat ≤ 32 characters, weibo ≤ 123 "
        "Weibo units), over short_title",
    )
    wechat_digest: str | None = Field(
        default=None,
        description="the WeChat article's digest (≤ 128 characters); empty: the summary, cut "
        "at a sentence end",
    )
    domain: str
    department: str
    doc_number: str | None = None
    formed_on: date
    keywords: list[str] | None = None
    cover_image: str | None = Field(
        default=None, max_length=URL_MAX, description="URL, or the url of POST /media"
    )
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
    short_titles: dict[str, str] | None = Field(
        default=None,
        max_length=CHANNELS_MAX,
        description='the kinds given replace theirs; "" clears one',
    )
    wechat_digest: str | None = Field(default=None, description='"" clears it')
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

    reason: Reason | None = None


RemoteId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=REMOTE_ID_MAX),
    AfterValidator(_plain),
]


class AdoptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remote_id: RemoteId = Field(description="the post's id on the channel, looked up there first")


class MarkPostedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remote_id: RemoteId | None = Field(default=None, description="the post's id, if known")
    url: str | None = Field(default=None, max_length=URL_MAX, description="the post's address")
    reason: str = Field(
        min_length=1,
        max_length=REASON_MAX,
        description="why the item counts as posted without the channel's word (required)",
    )


ChannelKind = enum.StrEnum("ChannelKind", {kind.upper(): kind for kind in KINDS})  # type: ignore[misc]


class FreezeIn(BaseModel):
    reason: str = Field(
        min_length=1, max_length=REASON_MAX, description="why publishing is frozen (shown to all)"
    )


class CredentialsIn(BaseModel):
    access_token: str = Field(
        min_length=1, max_length=TOKEN_MAX, json_schema_extra={"writeOnly": True}
    )


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: Name
    catecode: Code
    departments: list[Code] = Field(max_length=CODES_MAX)
    review_stages: list[Code] | None = Field(
        default=None,
        max_length=CODES_MAX,
        description="0–3 stage names, in order; default 初审, 终审",
    )
    required_metadata: list[Code] | None = Field(default=None, max_length=CODES_MAX)


class DomainPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    catecode: Code | None = None
    departments: list[Code] | None = Field(default=None, max_length=CODES_MAX)
    active: bool | None = None
    review_stages: list[Code] | None = Field(
        default=None,
        max_length=CODES_MAX,
        description="0–3 stage names, in order ([] = publish without review)",
    )
    required_metadata: list[Code] | None = Field(
        default=None,
        max_length=CODES_MAX,
        description="item fields required before publishing, e.g. doc_number",
    )


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Reason | None = None


class SendBackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(
        max_length=REASON_MAX, description="why the item goes back to its editor (required)"
    )


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: Name


class MediaOut(BaseModel):
    url: str
    sha256: str
    content_type: str


JSON = dict[str, Any]
