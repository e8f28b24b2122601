"""Pre-publish checks: personal data, sensitive words and missing metadata in an item.

A *finding* is `{kind, field, start, end, text_masked}` (docs/architecture.md, stable
interfaces), plus the `rule` that found it and a message for staff, in Chinese:

- `id_number`, `mobile`, `bank_card`: personal data (`publisher.services.personal_data`);
  `text_masked` hides the middle digits, the number is never given in clear;
- `sensitive_word`: a word of the run-time list (`SensitiveWord`), matched case-insensitively
  and full-width letters as half-width; `text_masked` is the word as written;
- `missing_metadata`: a field the item's domain requires (`Domain.required_metadata`) is
  empty (rule `required`, start = end = 0), or the 文号 is not of the form `松湖社〔2026〕12号`
  (rule `doc_number_format`, the whole value).

Fields read: `title`, `short_title`, each channel's short title (`short_titles.wechat`, …),
`wechat_digest`, `summary`, `body_html`, each keyword (`keywords[0]`, …) and `doc_number`.
`start`/`end` are character offsets in the field as stored: for `body_html`, in the sanitised
HTML that `GET /items/{id}` returns (text nodes and `alt`/`title` are read, see
`publisher.services.readable_text`), so a match may enclose inline tags. Invisible characters
are not read (`441900\u200b1990…` reads as one number) and every decimal digit reads as its
ASCII digit. The URLs of the body (`href`, `src`) are read for ID and mobile numbers only: no
bank cards (timestamps, ids) and no sensitive words (host names) there.

A finding blocks submitting and publishing (`require_no_blocking_findings`) unless a reviewer
overrode it (`override_findings`): the override is bound to the revision's content hash, so
any edit voids it, and to the findings shown then, so a word added to the list later blocks
again. Services never commit.
"""

from __future__ import annotations

import enum
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from ahocorasick_rs import AhoCorasick, MatchKind
from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.audit import audit
from publisher.errors import Conflict, FieldProblem, InvalidInput, NotFound
from publisher.i18n import t
from publisher.models import FindingOverride, Item, Revision, SensitiveWord
from publisher.services.personal_data import (
    BANK_CARD,
    ID_NUMBER,
    MOBILE,
    PersonalMatch,
    find_personal_data,
)
from publisher.services.readable_text import ReadableText, html_text, plain_text

log = logging.getLogger(__name__)


class FindingKind(enum.StrEnum):
    ID_NUMBER = ID_NUMBER
    MOBILE = MOBILE
    BANK_CARD = BANK_CARD
    SENSITIVE_WORD = "sensitive_word"
    MISSING_METADATA = "missing_metadata"


PERSONAL_KINDS = frozenset({FindingKind.ID_NUMBER, FindingKind.MOBILE, FindingKind.BANK_CARD})
KIND_LABELS = {
    FindingKind.ID_NUMBER: "身份证号",
    FindingKind.MOBILE: "手机号",
    FindingKind.BANK_CARD: "银行卡号",
    FindingKind.SENSITIVE_WORD: "敏感词",
    FindingKind.MISSING_METADATA: "元数据",
}
_PERSONAL_MESSAGES = {
    "gb11643": "疑似居民身份证号码（18位，校验码正确），公开前应遮盖",
    "gb11643_15": "疑似15位旧版居民身份证号码，公开前应遮盖",
    "mobile": "疑似手机号码，公开前应遮盖",
    "luhn": "疑似银行卡号（通过Luhn校验），公开前应遮盖",
}
# The fields a domain may require, and what staff call them.
METADATA_LABELS = {
    "title": "标题",
    "short_title": "短标题",
    "summary": "摘要",
    "keywords": "关键词",
    "doc_number": "文号",
    "formed_on": "成文日期",
    "cover_image": "封面图片",
}
# 发文字号 (GB/T 9704-2012 7.2.4): 机关代字, the year in 六角括号, the number without 第 or
# leading zeros, then 号.
DOC_NUMBER = re.compile(r"[\u3400-\u9fff]{1,20}〔(?:19|20)[0-9]{2}〕[1-9][0-9]{0,4}号")
DOC_NUMBER_RULE = (
    "文号格式应为“发文机关代字〔年份〕序号号”，如 松湖社〔2026〕12号："
    "年份用六角括号〔〕，序号不加“第”、不编虚位"
)
WORD_MAX = 64


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    field: str
    start: int
    end: int
    text_masked: str
    rule: str
    message: str

    @property
    def key(self) -> tuple[str, str, int, int, str]:
        """What an override records of the finding: the same text shows the same keys."""
        return (self.kind.value, self.field, self.start, self.end, self.rule)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "text_masked": self.text_masked,
            "rule": self.rule,
            "message": self.message,
        }


# --- what is read --------------------------------------------------------------------------


def revision_texts(revision: Revision) -> list[tuple[str, ReadableText]]:
    """Every text field of `revision` readers see, by field name, as read. (Attachments'
    names join here once items have attachments.)"""
    texts = [
        ("title", plain_text(revision.title or "")),
        ("short_title", plain_text(revision.short_title or "")),
        *(
            (f"short_titles.{kind}", plain_text(title))
            for kind, title in sorted((revision.short_titles or {}).items())
        ),
        ("wechat_digest", plain_text(revision.wechat_digest or "")),
        ("summary", plain_text(revision.summary or "")),
        ("body_html", html_text(revision.body_html or "")),
    ]
    texts += [(f"keywords[{i}]", plain_text(k)) for i, k in enumerate(revision.keywords or [])]
    texts.append(("doc_number", plain_text(revision.doc_number or "")))
    return [(name, text) for name, text in texts if text.stored]


def personal_matches(text: ReadableText, today: date | None = None) -> list[PersonalMatch]:
    """The personal data in `text` as read; in its URLs, ID and mobile numbers only."""
    return [
        match
        for match in find_personal_data(text.text, today)
        if match.kind != BANK_CARD or not text.in_url(match.start, match.end)
    ]


def personal_findings(name: str, text: ReadableText, today: date | None = None) -> list[Finding]:
    found = []
    for match in personal_matches(text, today):
        start, end = text.stored_span(match.start, match.end)
        found.append(
            Finding(
                FindingKind(match.kind),
                name,
                start,
                end,
                match.text_masked,
                match.rule,
                _PERSONAL_MESSAGES[match.rule],
            )
        )
    return found


# --- sensitive words -----------------------------------------------------------------------

# Full-width ASCII as ASCII, ideographic and no-break spaces as spaces: one character for one.
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20, 0xA0: 0x20}
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")  # \d: any decimal digit (category Nd)


def fold(text: str) -> str:
    """`text` as words are matched: case and width folded, every decimal digit as ASCII,
    positions unchanged."""
    folded = text.translate(_FOLD)
    if not folded.isascii():
        folded = _OTHER_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(0))), folded)
    lowered = folded.lower()
    if len(lowered) == len(folded):  # lower() only ever lengthens (İ → i̇)
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in folded)


class _WordMatcher:
    """One Aho-Corasick automaton over the folded word list: a scan costs the same for ten
    words or ten thousand. Built again only when the list changes."""

    # (the words as listed, their automaton); replaced whole, so a reader never sees half
    # of it (two threads building at once both build, one of them stays).
    _built: ClassVar[tuple[tuple[str, ...], AhoCorasick | None] | None] = None

    @classmethod
    def of(cls, session: Session) -> AhoCorasick | None:
        """The automaton of the words listed now (None: no word is)."""
        words = tuple(sorted(session.scalars(select(SensitiveWord.word))))
        built = cls._built
        if built is not None and built[0] == words:
            return built[1]
        folded = sorted({fold(w) for w in words} - {""})
        automaton = AhoCorasick(folded, matchkind=MatchKind.LeftmostLongest) if folded else None
        cls._built = (words, automaton)
        return automaton


def word_findings(name: str, text: ReadableText, automaton: AhoCorasick | None) -> list[Finding]:
    if automaton is None:
        return []
    found = []
    for _, start, end in automaton.find_matches_as_indexes(fold(text.text)):
        if text.in_url(start, end):
            continue
        written = text.text[start:end]
        stored_start, stored_end = text.stored_span(start, end)
        found.append(
            Finding(
                FindingKind.SENSITIVE_WORD,
                name,
                stored_start,
                stored_end,
                written,
                "sensitive_word",
                f"含敏感词“{written}”，请修改或由审查人员确认",
            )
        )
    return found


def list_words(session: Session) -> list[SensitiveWord]:
    return list(session.scalars(select(SensitiveWord).order_by(SensitiveWord.word)))


def add_words(session: Session, words: list[str], *, actor: str) -> tuple[list[str], list[str]]:
    """Add `words` to the list: (added, already there, in any case or width). Raises
    `InvalidInput` naming each empty, too long or multi-line word; nothing is added then."""
    problems = []
    cleaned = []
    for i, word in enumerate(words):
        word = unicodedata.normalize("NFC", word).strip()
        if not word:
            problems.append(FieldProblem(f"words[{i}]", "required", "a word must not be empty"))
        elif len(word) > WORD_MAX:
            problems.append(
                FieldProblem(
                    f"words[{i}]",
                    "max_length",
                    f"at most {WORD_MAX} characters",
                    values={"limit": WORD_MAX},
                )
            )
        elif any(unicodedata.category(c).startswith("C") for c in word):
            problems.append(FieldProblem(f"words[{i}]", "format", "one line of visible text"))
        cleaned.append(word)
    if not words:
        problems.append(FieldProblem("words", "required", "give at least one word"))
    if problems:
        raise InvalidInput(problems)
    known = {fold(w) for w in session.scalars(select(SensitiveWord.word))}
    added, already = [], []
    for word in cleaned:
        if fold(word) in known:
            already.append(word)
            continue
        known.add(fold(word))
        session.add(SensitiveWord(word=word, added_by=actor))
        added.append(word)
    if added:
        audit(session, actor, "sensitive_word.add", "sensitive_words", words=added)
    session.flush()
    return added, already


def remove_word(session: Session, word: str, *, actor: str) -> str:
    """Remove `word` (matched in any case or width) from the list; the word as it was stored.
    Raises `NotFound`."""
    wanted = fold(unicodedata.normalize("NFC", word).strip())
    for row in session.scalars(select(SensitiveWord)):
        if fold(row.word) == wanted:
            session.delete(row)
            audit(session, actor, "sensitive_word.remove", "sensitive_words", word=row.word)
            session.flush()
            return row.word
    raise NotFound(
        f"{word!r} is not in the sensitive-word list", zh=t("refusal.no_word", word=word)
    )


# --- required metadata ---------------------------------------------------------------------


def metadata_findings(item: Item, revision: Revision) -> list[Finding]:
    """Fields the item's domain requires and the revision leaves empty; a malformed 文号."""
    found = []
    domain = item.domain
    for name in domain.required_metadata or []:
        if name not in METADATA_LABELS:
            log.warning("domain %s requires unknown field %r: ignored", domain.code, name)
            continue
        value = getattr(revision, name)
        if value is None or (isinstance(value, str | list) and not "".join(value).strip()):
            label = METADATA_LABELS[name]
            found.append(
                Finding(
                    FindingKind.MISSING_METADATA,
                    name,
                    0,
                    0,
                    "",
                    "required",
                    f"“{domain.name}”领域的信息须填写{label}（{name}）",
                )
            )
    doc_number = revision.doc_number or ""
    if doc_number.strip() and not DOC_NUMBER.fullmatch(doc_number.strip()):
        found.append(
            Finding(
                FindingKind.MISSING_METADATA,
                "doc_number",
                0,
                len(doc_number),
                doc_number,
                "doc_number_format",
                DOC_NUMBER_RULE,
            )
        )
    return found


# --- all checks, overrides -----------------------------------------------------------------


def find_findings(
    session: Session, item: Item, revision: Revision, *, today: date | None = None
) -> list[Finding]:
    """Every finding in `revision` of `item`, by field and position (overridden or not)."""
    automaton = _WordMatcher.of(session)
    found: list[Finding] = []
    for name, text in revision_texts(revision):
        field_found = personal_findings(name, text, today) + word_findings(name, text, automaton)
        found += sorted(field_found, key=lambda f: (f.start, f.end))
    return found + metadata_findings(item, revision)


def _overridden_keys(session: Session, item_id: int, content_hash: str) -> set[tuple[Any, ...]]:
    rows = session.scalars(
        select(FindingOverride.findings).where(
            FindingOverride.item_id == item_id, FindingOverride.content_hash == content_hash
        )
    )
    return {
        (f["kind"], f["field"], f["start"], f["end"], f["rule"]) for found in rows for f in found
    }


def blocking_findings(session: Session, item: Item, revision: Revision) -> list[Finding]:
    """The findings of `revision` no reviewer overrode for exactly this text (empty when
    all were)."""
    found = find_findings(session, item, revision)
    if not found:
        return []
    overridden = _overridden_keys(session, item.id, revision.content_hash)
    return [f for f in found if f.key not in overridden]


def require_no_blocking_findings(session: Session, item: Item, revision: Revision) -> None:
    """Raise `InvalidInput` (HTTP 422) listing each blocking finding: its field, its kind as
    the rule, and in the message what was found where and what to do."""
    found = blocking_findings(session, item, revision)
    if found:
        raise InvalidInput([_problem(item.id, f) for f in found])


def _problem(item_id: int, finding: Finding) -> FieldProblem:
    where = f"{finding.field} 第{finding.start}–{finding.end}字符"
    what = f"{KIND_LABELS[finding.kind]} {finding.text_masked}".rstrip()
    remedy = (
        f"请修改（个人信息可一键遮盖：POST /api/v1/items/{item_id}/mask），"
        f"或由本部门审查人员说明理由后放行（POST /api/v1/items/{item_id}/override-findings）"
    )
    return FieldProblem(
        finding.field,
        finding.kind.value,
        f"{what}（{where}）：{finding.message}；{remedy}",
        values={
            "start": finding.start,
            "end": finding.end,
            "masked": finding.text_masked,
            "detail": finding.message,
        },
    )


def findings_view(session: Session, item: Item, revision: Revision) -> list[dict[str, Any]]:
    """Every finding of `revision` as the API shows it, each saying whether it was overridden."""
    found = find_findings(session, item, revision)
    overridden = _overridden_keys(session, item.id, revision.content_hash) if found else set()
    return [{**f.as_dict(), "overridden": f.key in overridden} for f in found]


def override_findings(
    session: Session,
    item: Item,
    revision: Revision,
    *,
    reviewer: str,
    reason: str,
) -> FindingOverride:
    """Let the blocking findings of `revision` go out, for the reason given (audited). The
    caller checks that `reviewer` may review the item.

    Raises `InvalidInput` without a reason, `Conflict` when nothing blocks.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput([FieldProblem("reason", "required", "放行须说明理由")])
    found = blocking_findings(session, item, revision)
    if not found:
        raise Conflict(
            f"item {item.id} revision {revision.number} has no blocking finding",
            zh=t("refusal.no_blocking_finding", id=item.id, revision=revision.number),
        )
    recorded = [{k: v for k, v in f.as_dict().items() if k != "message"} for f in found]
    row = FindingOverride(
        item_id=item.id,
        content_hash=revision.content_hash,
        reviewer=reviewer,
        reason=reason,
        findings=recorded,
    )
    session.add(row)
    audit(
        session,
        reviewer,
        "item.override_findings",
        f"item:{item.id}",
        item_id=item.id,
        revision_id=revision.id,
        revision=revision.number,
        reason=reason,
        findings=[[f.kind.value, f.field, f.start, f.end] for f in found],
    )
    session.flush()
    return row
