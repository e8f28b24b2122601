"""Reading one item and its latest revision: shared by the item and review services (which
must not import each other's modules both ways). Takes the caller's session; never commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from publisher.errors import NotFound
from publisher.i18n import t
from publisher.models import Domain, Item, Revision


def get_item(session: Session, item_id: int, *, for_update: bool = False) -> Item:
    """The item with its domain and department, in one query (not the domain's list of
    departments, which no change to an item needs). Raises `NotFound`."""
    stmt = select(Item).where(Item.id == item_id).options(lazyload(Item.domain, Domain.departments))
    if for_update:
        stmt = stmt.with_for_update(of=Item, key_share=True)
    item = session.scalars(stmt).first()
    if item is None:
        raise NotFound(f"item {item_id} does not exist", zh=t("refusal.no_item", id=item_id))
    return item


def latest_revision(session: Session, item_id: int) -> Revision:
    rev = session.scalars(
        select(Revision).where(Revision.item_id == item_id).order_by(Revision.number.desc())
    ).first()
    if rev is None:
        raise NotFound(f"item {item_id} has no revision", zh=t("refusal.no_revision", id=item_id))
    return rev
