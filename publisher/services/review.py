"""Review before publishing (政府信息公开审查): submit, approve stage by stage, send back.

An item's domain names its review stages, in order (0–3; default 初审, 终审). The item goes
draft → submitted → approved (every stage, in order) → published; a send-back with a comment
returns it to draft. An approval is bound to the content hash of the revision it approved:
any edit (a new revision) voids every approval, so what goes out is exactly what was
approved. Nobody approves their own item (its creator, or the author of any of its
revisions); nobody approves two stages of the same revision; reviewers act only on their
departments' items.

Edits of a published item (in a domain with stages) are held: the new revision waits for
every stage again (submit, approvals), and only the next `publish` points the channels at it.
Until then the channels keep the revision that was approved.

The urgent path: an urgent item of `URGENT_DOMAINS` (灾害事故救援) may be published by a
reviewer with one approval. It is flagged `post_review_pending`; the remaining stages then
approve the published revision (`Approval.post_review`) and the last one clears the flag.

Flags that change where and how an item goes out without changing its text (`urgent`, `push`,
`channels`) are a reviewer's decision once a reviewer has approved the item, and `urgent`
(which lets an item through a publishing freeze) is always a reviewer's decision where no
reviewer would look at it before it goes out (a domain without stages). Moving an item to
another domain (which names its stages) is a reviewer's decision once it was submitted, and
an edit of a published item is held unless neither its old nor its new domain has stages.

Functions take the caller's session and never commit. Imports only the models, the audit
trail and the principal: `services/items.py` calls in here, never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.auth import Principal
from publisher.errors import Conflict, FieldProblem, Forbidden, InvalidInput
from publisher.i18n import t
from publisher.models import (
    Approval,
    AuditEvent,
    Delivery,
    Domain,
    Item,
    ItemStatus,
    Revision,
    Role,
    utcnow,
)
from publisher.services.findings import require_no_blocking_findings
from publisher.services.lookup import get_item, latest_revision

# Domains whose urgent items may go out with one approval, reviewed afterwards.
URGENT_DOMAINS = frozenset({"disaster"})  # 灾害事故救援
# What a reviewer decides once the item is approved: where and how it goes out.
FLAG_FIELDS = ("urgent", "push", "channels")
# What a reviewer may change of an item: the flags, and its domain (which names its stages).
REVIEWER_FIELDS = (*FLAG_FIELDS, "domain")
COMMENT_MAX = 2000


@dataclass(frozen=True)
class StageState:
    number: int  # 1 = the first stage
    name: str
    approval: Approval | None  # the valid approval of this stage, if any


@dataclass(frozen=True)
class ReviewState:
    """Where the latest revision stands in its domain's review."""

    revision: Revision
    stages: tuple[StageState, ...]
    submitted: bool  # submitted and not sent back since
    approvals: tuple[Approval, ...]  # every approval of the item, oldest first

    @property
    def missing(self) -> list[str]:
        return [s.name for s in self.stages if s.approval is None]

    @property
    def complete(self) -> bool:
        return all(s.approval is not None for s in self.stages)

    @property
    def next_stage(self) -> StageState | None:
        return next((s for s in self.stages if s.approval is None), None)

    @property
    def valid(self) -> list[Approval]:
        return [s.approval for s in self.stages if s.approval is not None]

    @property
    def state(self) -> str:
        """`approved` (submitted, every stage approved), `submitted` (waiting for a stage) or
        `draft` (not submitted, or sent back)."""
        if not self.submitted:
            return ItemStatus.DRAFT.value
        return ItemStatus.APPROVED.value if self.complete else ItemStatus.SUBMITTED.value


def is_valid(approval: Approval, revision: Revision) -> bool:
    """Whether `approval` still holds for `revision`: same text, not voided."""
    return approval.voided_at is None and approval.content_hash == revision.content_hash


def review_state_of(item: Item, revision: Revision, approvals: Sequence[Approval]) -> ReviewState:
    """`review_state` of what the caller already loaded: the item's latest revision and all
    its approvals. A stage is matched by name, so renaming or reordering stages at run time
    never lets one stage's approval stand for another."""
    valid = {a.stage_name: a for a in approvals if is_valid(a, revision)}
    stages = tuple(
        StageState(number, name, valid.get(name))
        for number, name in enumerate(item.domain.review_stages or [], start=1)
    )
    submitted = item.submitted_at is not None and item.status not in (
        ItemStatus.DRAFT,
        ItemStatus.RETRACTED,
    )
    return ReviewState(revision, stages, submitted, tuple(approvals))


def review_state(session: Session, item: Item) -> ReviewState:
    """The stages of the item's domain, the approvals valid for its latest revision, and
    what is missing."""
    return review_state_of(
        item, latest_revision(session, item.id), item_approvals(session, item.id)
    )


def item_approvals(session: Session, item_id: int) -> list[Approval]:
    return list(
        session.scalars(select(Approval).where(Approval.item_id == item_id).order_by(Approval.id))
    )


def live_revision_id(session: Session, item_id: int) -> int | None:
    """The revision the item's channels were last told to show (None: never published)."""
    found: int | None = session.scalar(
        select(func.max(Delivery.desired_revision_id)).where(
            Delivery.item_id == item_id, Delivery.desired_present.is_(True)
        )
    )
    return found


def review_fields(
    item: Item,
    revisions: Sequence[Revision],
    approvals: Sequence[Approval],
    deliveries: Iterable[Delivery],
) -> dict[str, Any]:
    """The item view's review part, from what the caller loaded (`revisions` oldest first):
    every approval (`valid` for the latest revision's text, or not), and `review`: the
    stages, what is missing, and whether a published item's edit is held for review."""
    latest = revisions[-1] if revisions else None
    numbers = {r.id: r.number for r in revisions}
    fields: dict[str, Any] = {
        "post_review_pending": item.post_review_pending,
        "submitted_at": _iso(item.submitted_at),
        "sent_back_comment": item.sent_back_comment,
        "approvals": [
            {
                "stage": a.stage,
                "stage_name": a.stage_name,
                "reviewer": a.reviewer,
                "at": _iso(a.at),
                "comment": a.comment,
                "valid": latest is not None and is_valid(a, latest),
                "post_review": a.post_review,
                "revision": numbers.get(a.revision_id),
                "voided_at": _iso(a.voided_at),
            }
            for a in approvals
        ],
        "review": None,
    }
    if latest is None:
        return fields
    state = review_state_of(item, latest, approvals)
    shown = max((d.desired_revision_id or 0 for d in deliveries if d.desired_present), default=0)
    fields["review"] = {
        "revision": latest.number,
        "state": state.state,
        "stages": [
            {
                "stage": s.number,
                "name": s.name,
                "approved": s.approval is not None,
                "reviewer": s.approval.reviewer if s.approval else None,
                "at": _iso(s.approval.at) if s.approval else None,
            }
            for s in state.stages
        ],
        "missing": state.missing,
        "urgent_path": item.domain_code in URGENT_DOMAINS and item.urgent,
        # A published item's edit waiting for review: its channels show `shown_revision`.
        "held": item.status == ItemStatus.PUBLISHED and bool(shown) and shown != latest.id,
        "shown_revision": numbers.get(shown),
    }
    return fields


# --- actions --------------------------------------------------------------------------------


def submit_item(session: Session, item_id: int, who: Principal) -> Item:
    """Send the latest revision to review. Raises `NotFound`, `Forbidden` (not an editor of
    the item's department), `Conflict` (nothing to submit), or what the pre-publish checks
    raise. In a domain without stages the item is approved at once."""
    who.require(Role.EDITOR)
    item = get_item(session, item_id, for_update=True)
    who.require_department(item.department_code)
    state = review_state(session, item)
    if item.status == ItemStatus.RETRACTED:
        raise Conflict(
            f"item {item_id} is retracted; publish it again instead",
            zh=t("refusal.retracted_submit", id=item_id),
        )
    if state.submitted or item.status == ItemStatus.APPROVED:
        raise Conflict(
            f"item {item_id} is already submitted (revision {state.revision.number})",
            zh=t("refusal.already_submitted", id=item_id, revision=state.revision.number),
        )
    if item.status == ItemStatus.PUBLISHED and not (
        item.post_review_pending or live_revision_id(session, item.id) != state.revision.id
    ):
        raise Conflict(
            f"item {item_id} is published as approved; edit it to submit a change",
            zh=t("refusal.published_as_approved", id=item_id),
        )
    require_no_blocking_findings(session, item, state.revision)
    item.submitted_at = utcnow()
    item.sent_back_comment = None
    if item.status != ItemStatus.PUBLISHED:
        item.status = ItemStatus.APPROVED if state.complete else ItemStatus.SUBMITTED
    audit(
        session,
        who.actor,
        "item.submit",
        f"item:{item.id}",
        item_id=item.id,
        revision_id=state.revision.id,
        revision=state.revision.number,
        stages=list(item.domain.review_stages or []),
    )
    return item


def approve_item(
    session: Session, item_id: int, who: Principal, comment: str | None = None
) -> Approval:
    """Approve the next stage of the item's latest revision, as `who`.

    Raises `NotFound`; `Forbidden` when `who` is not a reviewer of the item's department, wrote
    the item or any of its revisions, or already approved a stage of this revision; `Conflict`
    when the item is not waiting for a stage; `InvalidInput` for a comment over
    `COMMENT_MAX` characters. A published item's approval is a review after the fact
    (`post_review`) when its channels show the approved revision (the urgent path).
    """
    who.require(Role.REVIEWER)
    comment = _comment(comment, required=False)
    item = get_item(session, item_id, for_update=True)
    who.require_department(item.department_code)
    state = review_state(session, item)
    stage = state.next_stage
    if not state.stages:
        raise Conflict(
            f"domain {item.domain_code!r} has no review stages: publish directly",
            zh=t("refusal.no_review_stages", domain=item.domain_code),
        )
    if stage is None and state.submitted:
        raise Conflict(
            f"every stage of item {item_id} is approved already",
            zh=t("refusal.all_approved", id=item_id),
        )
    if stage is None or not _under_review(session, item, state):
        raise Conflict(
            f"item {item_id} is not submitted for review (revision {state.revision.number})",
            zh=t("refusal.not_submitted", id=item_id, revision=state.revision.number),
        )
    me = person(who)
    if me in authors(session, item):
        raise Forbidden(
            "不能审核自己撰写的信息 (nobody approves their own item)", zh=t("refusal.own_item")
        )
    mine = next((a for a in state.valid if person_of(a.reviewer) == me), None)
    if mine is not None:
        raise Forbidden(
            f"您已通过本版本的{mine.stage_name}，同一人不能审核两个环节 "
            "(nobody approves two stages of one revision)",
            zh=t("refusal.two_stages", stage=mine.stage_name),
        )
    post_review = (
        item.status == ItemStatus.PUBLISHED
        and live_revision_id(session, item.id) == state.revision.id
    )
    approval = Approval(
        item_id=item.id,
        revision_id=state.revision.id,
        content_hash=state.revision.content_hash,
        stage=stage.number,
        stage_name=stage.name,
        reviewer=me,
        comment=comment,
        post_review=post_review,
    )
    session.add(approval)
    session.flush()
    complete = len(state.missing) == 1  # this stage was the last one missing
    if complete and item.status == ItemStatus.SUBMITTED:
        item.status = ItemStatus.APPROVED
    if complete and post_review:
        item.post_review_pending = False
    audit(
        session,
        who.actor,
        "item.approve",
        f"item:{item.id}",
        item_id=item.id,
        revision_id=state.revision.id,
        stage=stage.number,
        stage_name=stage.name,
        post_review=post_review,
        complete=complete,
        comment=comment,
    )
    return approval


def send_back_item(session: Session, item_id: int, who: Principal, comment: str | None) -> Item:
    """Return the item to its editor with a comment (required): the approvals of its latest
    revision are voided, and the item is a draft again (a published item stays published:
    its channels keep what they show). Raises `NotFound`, `Forbidden`, `Conflict`,
    `InvalidInput` (no comment)."""
    who.require(Role.REVIEWER)
    text = _comment(comment, required=True)
    item = get_item(session, item_id, for_update=True)
    who.require_department(item.department_code)
    state = review_state(session, item)
    if not _under_review(session, item, state):
        raise Conflict(
            f"item {item_id} is not under review; nothing to send back",
            zh=t("refusal.not_under_review", id=item_id),
        )
    now = utcnow()
    for approval in state.valid:
        approval.voided_at = now
    item.submitted_at = None
    item.sent_back_comment = text
    if item.status in (ItemStatus.SUBMITTED, ItemStatus.APPROVED):
        item.status = ItemStatus.DRAFT
    audit(
        session,
        who.actor,
        "item.send_back",
        f"item:{item.id}",
        item_id=item.id,
        revision_id=state.revision.id,
        comment=text,
        voided=[a.id for a in state.valid],
    )
    return item


# --- what items.py asks ---------------------------------------------------------------------


def check_publishable(
    session: Session,
    item: Item,
    revision: Revision,
    approvals: Sequence[Approval],
    who: Principal | None,
) -> bool:
    """Whether `revision` of `item` may go out now; True when it goes on the urgent path
    (with fewer approvals than stages, to be reviewed afterwards).

    Raises `Conflict` naming the missing stages (HTTP 409, the reason in `detail`), or what
    the pre-publish checks raise. `who` None (a tool or test calling the service) has no
    reviewer's powers: it never takes the urgent path.
    """
    require_no_blocking_findings(session, item, revision)
    state = review_state_of(item, revision, approvals)
    if state.complete:
        return False
    missing = "、".join(state.missing)
    if item.domain_code in URGENT_DOMAINS and item.urgent and state.valid:
        if who is not None and _reviews_department(who, item.department_code):
            return True
        raise Conflict(
            f"紧急发布只能由审核人执行，尚缺：{missing} "
            f"(item {item.id}: the urgent path needs a reviewer of {item.department_code!r})",
            zh=t("refusal.urgent_needs_reviewer", missing=missing),
        )
    raise Conflict(
        f"发布前须通过全部审核环节，尚缺：{missing} "
        f"(item {item.id} revision {revision.number} is not approved: {state.state})",
        zh=t("refusal.not_approved", missing=missing),
    )


def after_edit(session: Session, item: Item, revision: Revision, actor: str) -> None:
    """A new revision voids every approval and returns a submitted or approved item to
    draft (a published one stays published: its edit is held until approved)."""
    now = utcnow()
    voided = []
    for approval in session.scalars(
        select(Approval).where(Approval.item_id == item.id, Approval.voided_at.is_(None))
    ):
        approval.voided_at = now
        voided.append(approval.id)
    item.submitted_at = None
    if item.status in (ItemStatus.SUBMITTED, ItemStatus.APPROVED):
        item.status = ItemStatus.DRAFT
    if voided:
        audit(
            session,
            actor,
            "item.approvals_voided",
            f"item:{item.id}",
            item_id=item.id,
            revision_id=revision.id,
            approvals=voided,
        )


def check_flag_changes(
    session: Session,
    item: Item | None,
    domain: Domain,
    department: str,
    changes: dict[str, tuple[Any, Any]],
    who: Principal | None,
) -> None:
    """Whether `who` may change the flags in `changes` (name → (before, after)) of `item`
    (None: an item being created in `domain` for `department`; `domain` is the item's domain
    after the change, a change of it given as `changes["domain"]`). Raises `Forbidden`.

    Once the item was submitted (it is submitted, approved or published, or was submitted
    and sent back or edited since), moving it to another domain is a reviewer's decision:
    the domain names the stages it must pass. After a reviewer's approval (or publishing,
    where the old or new domain has stages), `urgent`, `push` and `channels` are a
    reviewer's decision. An urgent item (exempt from a publishing freeze) in a domain
    without stages, where no reviewer sees it before it goes out, is a reviewer's decision
    whichever of these changes makes it so.
    """
    changed = {name: pair for name, pair in changes.items() if pair[0] != pair[1]}
    if not changed or (who is not None and _reviews_department(who, department)):
        return
    if "domain" in changed and item is not None and _ever_submitted(session, item):
        raise Forbidden(
            "送审后更改领域须由审核人决定 "
            "(once submitted, moving an item to another domain is a reviewer's decision)",
            zh=t("refusal.domain_after_submit"),
        )
    staged = bool(domain.review_stages) or (item is not None and bool(item.domain.review_stages))
    approved = item is not None and (
        item.status == ItemStatus.APPROVED
        or (item.status == ItemStatus.PUBLISHED and staged)
        or any(a.voided_at is None for a in item_approvals(session, item.id))
    )
    if approved:
        raise Forbidden(
            f"审核通过后修改 {'、'.join(sorted(changed))} 须由审核人决定 "
            "(after approval, urgent, push and channels are a reviewer's decision)",
            zh=t("refusal.after_approval", fields="、".join(sorted(changed))),
        )
    if "urgent" in changes:
        urgent = bool(changes["urgent"][1])
    else:
        urgent = item is not None and bool(item.urgent)
    if urgent and not domain.review_stages:
        raise Forbidden(
            "该领域没有审核环节，标记紧急（冻结期间照常发布）须由审核人决定 "
            "(marking an item urgent exempts it from a freeze: a reviewer's decision)",
            zh=t("refusal.urgent_by_reviewer"),
        )


def check_content_rights(who: Principal | None, given: Sequence[str]) -> None:
    """Reviewers decide the flags and the domain (`REVIEWER_FIELDS`); the text is the
    editors' to write: a reviewer who would change it sends the item back instead. Raises
    `Forbidden`."""
    content = sorted(set(given) - set(REVIEWER_FIELDS))
    if who is not None and who.role == Role.REVIEWER and content:
        raise Forbidden(
            f"审核人只能修改 urgent、push、channels、domain；{'、'.join(content)} 请退回编辑修改 "
            "(reviewers change only urgent, push, channels and domain)",
            zh=t("refusal.reviewer_fields", fields="、".join(content)),
        )


def audit_flag_changes(
    session: Session, item: Item, changes: dict[str, tuple[Any, Any]], actor: str
) -> None:
    """One audit row for a change of `urgent`, `push`, `channels` or `domain`: [before,
    after] each."""
    changed = {name: list(pair) for name, pair in changes.items() if pair[0] != pair[1]}
    if changed:
        audit(session, actor, "item.flags", f"item:{item.id}", item_id=item.id, changed=changed)


# --- helpers ------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def person(who: Principal) -> str:
    """The person the review rules compare: the user's name, else the caller's actor."""
    return who.name or who.actor


def person_of(actor: str | None) -> str | None:
    """The person an audit actor names: the CLI records `cli:<OS user> as NAME` for a command
    run with `--as NAME` (publisher/cli/common.py), the API the user's name."""
    if actor is None:
        return None
    _, found, name = actor.rpartition(" as ")
    return name if found and actor.startswith("cli:") else actor


def authors(session: Session, item: Item) -> set[str | None]:
    """The people who wrote the item: its creator and the author of every revision."""
    actors = session.scalars(select(Revision.created_by).where(Revision.item_id == item.id))
    return {person_of(item.created_by), *(person_of(a) for a in actors)}


def _ever_submitted(session: Session, item: Item) -> bool:
    """Whether the item is or was under review: submitted, approved or published now, or
    submitted once (an approval, voided or not, or a submit in the audit trail)."""
    if item.status != ItemStatus.DRAFT or item.submitted_at is not None:
        return True
    if session.scalar(select(Approval.id).where(Approval.item_id == item.id).limit(1)):
        return True
    found = session.scalar(
        select(AuditEvent.id)
        .where(AuditEvent.item_id == item.id, AuditEvent.action == "item.submit")
        .limit(1)
    )
    return found is not None


def _under_review(session: Session, item: Item, state: ReviewState) -> bool:
    """Submitted and waiting: a submitted or approved item, or a published one whose held
    edit was submitted or whose urgent publication awaits its review afterwards."""
    if item.status in (ItemStatus.SUBMITTED, ItemStatus.APPROVED):
        return True
    if item.status != ItemStatus.PUBLISHED or not state.submitted:
        return False
    return item.post_review_pending or live_revision_id(session, item.id) != state.revision.id


def _reviews_department(who: Principal, department: str) -> bool:
    """Whether `who` is a reviewer (or admin) of `department`."""
    if who.role == Role.ADMIN:
        return True
    return who.role == Role.REVIEWER and department in who.departments


def _comment(comment: str | None, *, required: bool) -> str | None:
    text = (comment or "").strip()
    if required and not text:
        raise InvalidInput([FieldProblem("comment", "required", "退回须写明原因 (say why)")])
    if len(text) > COMMENT_MAX:
        raise InvalidInput(
            [
                FieldProblem(
                    "comment",
                    "max_length",
                    f"at most {COMMENT_MAX} characters",
                    values={"limit": COMMENT_MAX},
                )
            ]
        )
    return text or None
