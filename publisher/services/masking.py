"""One-step mask: a new revision with every piece of personal data masked where it stands.

ID numbers keep their region and last four characters (`441900********1234`), mobile numbers
their first three and last four digits (`138****5678`), bank cards their first and last four
(`6222 **** **** 1234`); separators stay. Title, short titles, WeChat digest, summary,
keywords, 文号 and body are masked; in the body only text (text nodes, `alt`, `title`) is
touched, never a tag or an attribute's syntax (`publisher.services.readable_text`): a number
in a link or image URL (`href`, `src`) is masked inside the attribute value. The masked body
is stored as HTML: a revision written in Markdown loses its Markdown source (the HTML is what
channels show).

The revision goes through the ordinary edit (`edit_checked`): validation, the edit's audit
row and, for a published item, its channels following it. Services never commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.config import Settings
from publisher.delivery.publication import ChannelPool
from publisher.errors import Conflict
from publisher.i18n import t
from publisher.models import Revision
from publisher.services.findings import personal_matches, revision_texts
from publisher.services.items import ItemFields, latest_revision
from publisher.services.publishing import edit_checked


@dataclass(frozen=True)
class Masked:
    """What masking a revision gives: the fields to write, and how many of each kind."""

    fields: ItemFields
    counts: dict[str, int]


def masked_fields(revision: Revision) -> Masked:
    """The fields of `revision` that hold personal data, masked (others left `None`)."""
    fields = ItemFields()
    counts: dict[str, int] = {}
    keywords = list(revision.keywords or [])
    for name, text in revision_texts(revision):
        matches = personal_matches(text)
        if not matches:
            continue
        for match in matches:
            counts[match.kind] = counts.get(match.kind, 0) + 1
        masked = text.masked(p for match in matches for p in match.hidden)
        if name.startswith("keywords["):
            keywords[int(name[len("keywords[") : -1])] = masked
            fields.keywords = keywords
        elif name.startswith("short_titles."):
            fields.short_titles = {**(fields.short_titles or {}), name.split(".", 1)[1]: masked}
        else:
            setattr(fields, name, masked)
    return Masked(fields, counts)


def mask_item(
    session: Session,
    settings: Settings,
    item_id: int,
    pool: ChannelPool,
    *,
    actor: str,
) -> tuple[Revision, dict[str, int]]:
    """A new revision of the item with its personal data masked, and how many of each kind
    were masked. Raises `Conflict` when there is nothing to mask, and whatever an edit
    raises (`InvalidInput`, `Conflict`, `NotFound`)."""
    masked = masked_fields(latest_revision(session, item_id))
    if not masked.counts:
        raise Conflict(
            f"item {item_id} has no personal data to mask",
            zh=t("refusal.nothing_to_mask", id=item_id),
        )
    revision = edit_checked(session, settings, item_id, masked.fields, pool, actor=actor)
    if revision is None:  # cannot happen: a masked character always changes the text
        raise Conflict(
            f"item {item_id}: masking changed nothing",
            zh=t("refusal.mask_changed_nothing", id=item_id),
        )
    audit(
        session,
        actor,
        "item.mask",
        f"item:{item_id}",
        item_id=item_id,
        revision_id=revision.id,
        revision=revision.number,
        masked=masked.counts,
    )
    return revision, masked.counts
