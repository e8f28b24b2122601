"""What the operator's forms share: field checks, problems as text, the confirmation step of
a destructive action, and the status line shown after an action.

A destructive action (cancel a delivery, retry all of a channel's failures, mark a delivery
posted, freeze, lift a freeze) is confirmed on a page of its own: the first POST answers a
page that repeats the form's values and asks again; only a POST with `confirm=yes` acts. It
works without a script and reads the same to a screen reader as to anyone.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import HTMLResponse

from publisher.console.web import Viewer, render
from publisher.errors import FieldProblem, InvalidInput
from publisher.i18n.problems import zh
from publisher.services.limits import unsafe_character, unsafe_characters

CONFIRMED = "yes"


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
    action: str,
    values: Mapping[str, str],
    back: str,
    danger: bool = True,
) -> HTMLResponse:
    """The page asking once more before `action` is posted with `values` and `confirm=yes`."""
    context = {
        "question": question,
        "action": action,
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
