"""What the operator's forms share: field checks, problems as text, the confirmation step of
a destructive action, the status line shown after an action, and the filters and pages of
the lists (deliveries, drift).

A destructive action (cancel a delivery, retry all of a channel's failures, mark a delivery
posted, freeze, lift a freeze) is confirmed on a page of its own: the first POST answers a
page that repeats the form's values and asks again; only a POST with `confirm=yes` acts. It
works without a script and reads the same to a screen reader as to anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from channels.registry import KINDS
from publisher.console.web import Viewer, render
from publisher.errors import FieldProblem, InvalidInput
from publisher.i18n import t
from publisher.i18n.problems import zh
from publisher.services.limits import ID_MAX, OFFSET_MAX, unsafe_character, unsafe_characters
from publisher.services.queries import Page

CONFIRMED = "yes"
PAGE_SIZE = 50
MAX_PAGE = OFFSET_MAX // PAGE_SIZE  # deeper: narrow the filters (as the API says)


def field_errors(exc: InvalidInput) -> dict[str, str]:
    """Each field's problems as one line of text, keyed by the field's name."""
    errors: dict[str, str] = {}
    for problem in exc.problems:
        text = zh(problem)
        errors[problem.field] = (
            f"{errors[problem.field]}；{text}" if problem.field in errors else text
        )
    return errors


def checked_text(
    field: str, value: str, *, max_length: int, required: bool = False, plain: bool = False
) -> str:
    """`value` stripped, or `InvalidInput` naming `field` and the rule it breaks."""
    value = (value or "").strip()
    problems = []
    if required and not value:
        problems.append(FieldProblem(field, "required", f"{field} is required"))
    if len(value) > max_length:
        message = f"{field} must be at most {max_length} characters"
        problems.append(FieldProblem(field, "max_length", message, values={"limit": max_length}))
    unsafe = unsafe_characters(value) if plain and value else None
    if unsafe:
        codepoint = unsafe_character(value)
        message = f"{field} {unsafe}"
        problems.append(FieldProblem(field, "characters", message, values={"codepoint": codepoint}))
    if problems:
        raise InvalidInput(problems)
    return value


def confirm_page(
    request: Request,
    who: Viewer,
    *,
    question: str,
    values: Mapping[str, str],
    back: str,
    danger: bool = True,
) -> HTMLResponse:
    """The page asking once more before the form is posted again, to the address that asked,
    with `values` and `confirm=yes`."""
    context = {
        "question": question,
        "action": request.url.path,
        "values": dict(values),
        "back": back,
        "danger": danger,
    }
    return render(request, "ops/confirm.html", context, who=who)


def whole_number(text: str, maximum: int) -> int | None:
    """`text` as a whole number from 1 to `maximum` (ASCII digits only), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if 1 <= value <= maximum else None


def done_message(done: str | None, messages: Mapping[str, str]) -> str | None:
    """The status line for `?done=<key>` after an action; None for no key or an unknown one."""
    return messages.get(done or "")


# -- the lists' filters and pages -------------------------------------------------------------


@dataclass
class ListFilters:
    """Base of a list's filters: a dataclass of the fields as the form sent them, `page`, and
    `errors` (each field's problem, shown beside it)."""

    def query(self, **changes: Any) -> str:
        """The filters with `changes` as a query string (for the pager): the empty ones and
        the first page left out."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "errors"}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


def page_number(request: Request) -> int:
    """`?page=` as a whole number up to `MAX_PAGE`; 1 for none or any other text."""
    return whole_number(request.query_params.get("page", "1"), MAX_PAGE) or 1


def page_rows(page: int) -> Page:
    """The rows of page `page` (from 1)."""
    return Page(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)


def page_count(total: int) -> int:
    """How many pages `total` rows fill; one when there are none."""
    return max(1, -(-total // PAGE_SIZE))


def channel_item_problems(channel: str, item: str) -> dict[str, str]:
    """The problems of the channel and item filters, keyed by the field's name."""
    problems: dict[str, str] = {}
    if channel and channel not in KINDS:
        problems["channel"] = t("ops.filter.bad_channel")
    if item and whole_number(item, ID_MAX) is None:
        problems["item"] = t("ops.filter.bad_item")
    return problems
