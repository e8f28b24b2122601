"""The operator's dashboard (`/console/operations`): each channel's queue, live; the channels'
controls (pause, resume, retry all failed, a new access token); the organisation-wide
freeze; the workers' heartbeats; and the charts of the last day.

The queue and the heartbeats are fragments the page polls with htmx. A fragment the page
already shows answers 204 (nothing to swap), so its live region (`aria-live="polite"`)
speaks only when a figure changed, and a control never sits inside a region that is swapped
under the operator's focus. Every action is the API's: the same service call in the same
transaction, audited as it is (`publisher/api/routes_channels.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from publisher.api.routes_common import channel_pool, database_of, settings_of
from publisher.console import charts
from publisher.console.heartbeats import worker_ping
from publisher.console.ops_forms import (
    CONFIRMED,
    checked_text,
    confirm_page,
    done_message,
    field_errors,
    whole_number,
)
from publisher.console.web import Viewer, redirect, render, templates, viewer
from publisher.delivery.ops import retry_failed
from publisher.delivery.publication import check_kind
from publisher.delivery.wechat_digest import mass_sends_left
from publisher.errors import InvalidInput
from publisher.i18n import CATALOGUE, t
from publisher.models import DeliveryState, Role, utcnow
from publisher.services.channel_controls import (
    TOKEN_CHANNELS,
    channel_statuses,
    credentials_renewed,
    pause_channel,
    resume_channel,
    store_credentials,
    warm_pool,
)
from publisher.services.freeze import active_freeze, freeze_view, lift_freeze, start_freeze
from publisher.services.limits import ID_MAX, REASON_MAX, TOKEN_MAX
from publisher.services.queue_figures import (
    ChannelQueue,
    attempts_per_hour,
    channel_queues,
    publish_to_live,
)
from publisher.shared import shared_store

router = APIRouter(include_in_schema=False)


def ops_label(prefix: str, value: str) -> str:
    """The catalogue's word for `value` under `prefix` (a state, a wait reason, a channel);
    the value itself for one the catalogue does not know yet."""
    key = prefix + value
    return t(key) if key in CATALOGUE else value


templates.env.globals.update(
    ops_label=ops_label, ops_percent=charts.percent, ops_duration=charts.duration_text
)

HOME = "/console/operations"
QUEUE_POLL = "every 5s"
WORKERS_POLL = "every 15s"
# The states the dashboard counts, in the order it shows them.
SHOWN_STATES = (
    DeliveryState.PENDING,
    DeliveryState.RUNNING,
    DeliveryState.RETRYING,
    DeliveryState.DEFERRED,
    DeliveryState.CONFIRMING,
    DeliveryState.UNKNOWN,
    DeliveryState.FAILED,
)


def operator(who: Viewer = Depends(viewer)) -> Viewer:
    """The signed-in operator (or admin); the 403 page for anyone else."""
    who.principal.require(Role.OPERATOR)
    return who


@dataclass(frozen=True)
class ChannelCard:
    """What the dashboard shows of one channel: its status as `GET /channels` gives it, its
    queue, and (WeChat) the mass sends left today."""

    status: dict[str, Any]
    queue: ChannelQueue
    push_left: int | None = None

    @property
    def kind(self) -> str:
        return self.queue.kind

    @property
    def name(self) -> str:
        return charts.channel_name(self.kind)

    @property
    def takes_token(self) -> bool:
        return self.kind in TOKEN_CHANNELS

    @property
    def tightest_budget(self) -> dict[str, Any] | None:
        """The daily budget with the smallest share left."""
        budgets = [b for b in self.status.get("budgets", []) if b.get("limit")]
        return min(budgets, key=lambda b: b["left"] / b["limit"], default=None)


def read_cards(request: Request) -> tuple[list[ChannelCard], dict[str, Any]]:
    """Every channel's card and the freeze in force (`freeze_view`)."""
    pool = channel_pool(request)
    readings = warm_pool(pool)  # before the session: it may read the shared store
    now = utcnow()
    with database_of(request).session() as session:
        statuses = channel_statuses(session, pool, readings)
        queues = channel_queues(session, now)
        push_left = mass_sends_left(session, settings_of(request).wechat_mass_quota, now)
        freeze = freeze_view(active_freeze(session))
    cards = [
        ChannelCard(
            status, queues[status["kind"]], push_left if status["kind"] == "wechat" else None
        )
        for status in statuses
    ]
    return cards, freeze


def live_fragment(template: str, context: dict[str, Any]) -> tuple[Markup, str]:
    """A fragment's HTML and its digest (what `?seen=` compares)."""
    html = templates.get_template(template).render(context)
    return Markup(html), hashlib.sha256(html.encode()).hexdigest()[:20]


def done_messages(n: int) -> dict[str, str]:
    return {
        "paused": t("ops.done.paused"),
        "resumed": t("ops.done.resumed"),
        "retried_failed": t("ops.done.retried_failed", n=n),
        "token": t("ops.done.token", n=n),
        "frozen": t("ops.done.frozen"),
        "lifted": t("ops.done.lifted", n=n),
    }


def dashboard(
    request: Request,
    who: Viewer,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    cards, freeze = read_cards(request)
    queue, digest = live_fragment("ops/queue_cards.html", {"cards": cards, "states": SHOWN_STATES})
    now = utcnow()
    with database_of(request).session() as session:
        hourly = list(attempts_per_hour(session, now).values())
        to_live = list(publish_to_live(session, now).values())
    n = whole_number(request.query_params.get("n", ""), ID_MAX) or 0
    context = {
        "cards": cards,
        "freeze": freeze,
        "queue": queue,
        "digest": digest,
        "now": now,
        "errors": errors or {},
        "done": done_message(request.query_params.get("done"), done_messages(n)),
        "hourly": [(h, charts.hourly_chart(h)) for h in hourly],
        "failure_chart": charts.failure_rate_chart(hourly),
        "to_live": to_live,
        "to_live_chart": charts.time_to_live_chart(to_live),
        "poll": QUEUE_POLL,
        "failed_state": DeliveryState.FAILED,
    }
    return render(request, "ops/operations.html", context, status_code=status_code, who=who)


@router.get("/console/operations")
def operations(request: Request, who: Viewer = Depends(operator)) -> HTMLResponse:
    return dashboard(request, who)


@router.get("/console/operations/queue")
def queue_fragment(request: Request, seen: str = "", who: Viewer = Depends(operator)) -> Response:
    """The queue's cards; 204 when they are what the page shows (`seen`)."""
    cards, _ = read_cards(request)
    queue, digest = live_fragment("ops/queue_cards.html", {"cards": cards, "states": SHOWN_STATES})
    if seen == digest:
        return Response(status_code=204)
    context = {"queue": queue, "digest": digest, "now": utcnow(), "poll": QUEUE_POLL}
    return render(request, "ops/queue.html", context, who=who)


@router.get("/console/operations/workers")
def workers_fragment(request: Request, seen: str = "", who: Viewer = Depends(operator)) -> Response:
    """The workers that answer a ping (asked off the page's own request, at most every
    `CACHE_SECONDS`); 204 when that is what the page shows."""
    beats = worker_ping(request.app.state, settings_of(request)).read()
    inner, digest = live_fragment("ops/workers_list.html", {"beats": beats})
    if seen == digest:
        return Response(status_code=204)
    context = {"inner": inner, "digest": digest, "beats": beats, "poll": WORKERS_POLL}
    return render(request, "ops/workers.html", context, who=who)


# -- channel controls -----------------------------------------------------------------------


@router.post("/console/channels/{kind}/pause")
def pause(
    kind: str,
    request: Request,
    reason: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Stop sending to the channel; its deliveries wait (deferred), none fail."""
    check_kind(kind)
    try:
        text = checked_text("reason", reason, max_length=REASON_MAX)
    except InvalidInput as exc:
        return refused(request, who, f"pause.{kind}", exc)
    with database_of(request).session() as session:
        pause_channel(session, kind, text or None, actor=who.principal.actor)
    return redirect(f"{HOME}?done=paused")


@router.post("/console/channels/{kind}/resume")
def resume(kind: str, request: Request, who: Viewer = Depends(operator)) -> Response:
    """Send to the channel again; what it deferred becomes due now."""
    with database_of(request).session() as session:
        resume_channel(session, kind, actor=who.principal.actor)
    return redirect(f"{HOME}?done=resumed")


@router.post("/console/channels/{kind}/retry-failed")
def retry_all_failed(
    kind: str,
    request: Request,
    confirm: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Start every failed delivery of the channel again (after a confirmation)."""
    check_kind(kind)
    if confirm != CONFIRMED:
        question = t("ops.confirm.retry_failed", channel=charts.channel_name(kind))
        return confirm_page(
            request, who, question=question, action=request.url.path, values={}, back=HOME
        )
    with database_of(request).session() as session:
        count = retry_failed(session, kind, actor=who.principal.actor)
    return redirect(f"{HOME}?done=retried_failed&n={count}")


@router.post("/console/channels/{kind}/token")
def set_token(
    kind: str,
    request: Request,
    access_token: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """A new access token for the channel, sealed in the shared store where every worker
    reads it; never echoed back, logged or audited (`store_credentials`)."""
    check_kind(kind)
    settings, database = settings_of(request), database_of(request)
    try:
        token = checked_text("access_token", access_token, max_length=TOKEN_MAX, required=True)
        store_credentials(shared_store(settings, database), kind, token)
    except InvalidInput as exc:
        return refused(request, who, f"token.{kind}", exc)
    channel_pool(request).forget(kind)
    with database.session() as session:
        woken = credentials_renewed(session, kind, actor=who.principal.actor)
    return redirect(f"{HOME}?done=token&n={woken}")


# -- the freeze -----------------------------------------------------------------------------


@router.post("/console/freeze")
def freeze(
    request: Request,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Hold all publishing and edits except urgent items (after a confirmation)."""
    try:
        text = checked_text("reason", reason, max_length=REASON_MAX, required=True)
    except InvalidInput as exc:
        return refused(request, who, "freeze", exc)
    if confirm != CONFIRMED:
        question = t("ops.confirm.freeze", reason=text)
        return confirm_page(
            request,
            who,
            question=question,
            action=request.url.path,
            values={"reason": text},
            back=HOME,
        )
    try:
        with database_of(request).session() as session:
            start_freeze(session, text, actor=who.principal.actor)
    except InvalidInput as exc:
        return refused(request, who, "freeze", exc)
    return redirect(f"{HOME}?done=frozen")


@router.post("/console/freeze/lift")
def lift(
    request: Request,
    confirm: Annotated[str, Form()] = "",
    who: Viewer = Depends(operator),
) -> Response:
    """Lift the freeze (after a confirmation); what it held goes out now."""
    if confirm != CONFIRMED:
        return confirm_page(
            request,
            who,
            question=t("ops.confirm.lift"),
            action=request.url.path,
            values={},
            back=HOME,
            danger=False,
        )
    with database_of(request).session() as session:
        _, woken = lift_freeze(session, actor=who.principal.actor)
    return redirect(f"{HOME}?done=lifted&n={woken}")


def refused(request: Request, who: Viewer, form: str, exc: InvalidInput) -> HTMLResponse:
    """The dashboard again, the form's problems beside it (422)."""
    message = "；".join(field_errors(exc).values())
    return dashboard(request, who, errors={form: message}, status_code=422)
