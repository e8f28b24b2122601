"""Items and their immutable revisions: what a department writes once."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from publisher.models.base import (
    Base,
    ItemStatus,
    utcnow,
    value_enum,
)
from publisher.models.catalog import Department, Domain


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_code: Mapped[str] = mapped_column(ForeignKey("domains.code"))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    status: Mapped[ItemStatus] = mapped_column(value_enum(ItemStatus), default=ItemStatus.DRAFT)
    index_no: Mapped[str | None] = mapped_column(String(48), unique=True)
    channels: Mapped[list[str]] = mapped_column(default=list)
    push_tags: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Published on the urgent path with fewer approvals than its stages: reviewed afterwards,
    # flagged until then.
    post_review_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last send-back's comment, shown to the editor until the item is submitted again.
    sent_back_comment: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column()
    published_at: Mapped[datetime | None] = mapped_column()
    retracted_at: Mapped[datetime | None] = mapped_column()

    revisions: Mapped[list[Revision]] = relationship(
        back_populates="item", order_by="Revision.number", lazy="raise_on_sql"
    )
    domain: Mapped[Domain] = relationship(lazy="joined", innerjoin=True)
    department: Mapped[Department] = relationship(lazy="joined", innerjoin=True)


class Revision(Base):
    """An immutable version of an item's content; `content_hash` covers every rendered field."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("item_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    short_title: Mapped[str | None] = mapped_column(String(64))
    # A channel's own short title, by channel kind (`wechat`, `weibo`): it wins over
    # `short_title`, which stays the default for both.
    short_titles: Mapped[dict[str, str]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )
    # The digest of the WeChat article; None: cut from the summary (or body) when sent.
    wechat_digest: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text)
    body_markdown: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(default=list)
    doc_number: Mapped[str | None] = mapped_column(String(64))
    formed_on: Mapped[date] = mapped_column(Date)
    cover_image: Mapped[str | None] = mapped_column(String(1000))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="revisions", lazy="raise_on_sql")
