"""The operator's charts as server-side SVG (no chart library, no script): attempts per hour
per channel with the failed ones hatched, the failure rate per channel, and the time from
publishing to live per channel (median and 90th percentile).

Each chart is an `<svg role="img">` named by its `<title>` and summed up in its `<desc>`; the
page shows the same figures as a table beside it (`templates/ops/charts.html`). Colours meet
AA contrast against white, and no series is told by colour alone: failures are hatched,
medians and 90th percentiles are labelled with their values, and the legend says which is
which. Bars carry their figures as `data-*` attributes (what the tests read).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from markupsafe import Markup, escape

from publisher.console.web import BEIJING
from publisher.i18n import t
from publisher.services.queue_figures import ChannelHours, TimeToLive

# AA against white: blue 6.6:1, red 7.9:1, grey 6.0:1 (the CSS variables' colours).
SUCCEEDED = "#0b57d0"
FAILED = "#a40e26"
SLOWER = "#57606a"
AXIS = "#57606a"

HOURLY_WIDTH, HOURLY_HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 10, 24


def channel_name(kind: str) -> str:
    return t(f"ops.channel.{kind}")


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def duration_text(value: timedelta | None) -> str:
    """`45 秒`, `3 分 5 秒`, `2 小时 10 分`; '—' for none."""
    if value is None:
        return "—"
    seconds = round(value.total_seconds())
    if seconds < 60:
        return t("ops.duration.seconds", s=seconds)
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return t("ops.duration.minutes", m=minutes, s=seconds)
    hours, minutes = divmod(minutes, 60)
    return t("ops.duration.hours", h=hours, m=minutes)


def _svg(
    chart_id: str, width: int, height: int, title: str, desc: str, body: Iterable[str]
) -> Markup:
    head = (
        f'<svg class="chart" id="{chart_id}" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _hatch(pattern_id: str, colour: str) -> str:
    """Diagonal white stripes over `colour`: a failed share reads as hatched, not only red."""
    return (
        f'<defs><pattern id="{pattern_id}" patternUnits="userSpaceOnUse" width="5" height="5" '
        'patternTransform="rotate(45)">'
        f'<rect width="5" height="5" fill="{colour}"/>'
        '<line x1="0" y1="0" x2="0" y2="5" stroke="#ffffff" stroke-width="2"/>'
        "</pattern></defs>"
    )


def _nice_max(value: int) -> int:
    """A round top for the y axis at or above `value` (1, 2, 5, 10, 20, 50, …)."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def hourly_chart(hours: ChannelHours) -> Markup:
    """One channel's attempts per hour: a bar per hour, the succeeded part solid, the failed
    part hatched on top of it; the y axis from 0 to a round top."""
    kind = hours.kind
    chart_id = f"chart-hourly-{kind}"
    plot_w = HOURLY_WIDTH - LEFT - RIGHT
    plot_h = HOURLY_HEIGHT - TOP - BOTTOM
    top = _nice_max(max((h.succeeded + h.failed for h in hours.hours), default=0))
    slot = plot_w / max(1, len(hours.hours))
    bar_w = max(1.0, slot * 0.7)
    base = TOP + plot_h
    body = [_hatch(f"{chart_id}-hatch", FAILED)]
    body.append(
        f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + plot_w}" y2="{base}" stroke="{AXIS}"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="{AXIS}"/>'
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end">0</text>'
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{top}</text>'
    )
    for i, hour in enumerate(hours.hours):
        x = LEFT + i * slot + (slot - bar_w) / 2
        ok_h = plot_h * hour.succeeded / top
        bad_h = plot_h * hour.failed / top
        local = hour.start.astimezone(BEIJING)
        label = t(
            "ops.chart.hour_bar",
            hour=local.strftime("%H"),
            ok=hour.succeeded,
            failed=hour.failed,
        )
        body.append(
            f'<g class="bar" data-hour="{hour.start.isoformat()}" '
            f'data-succeeded="{hour.succeeded}" data-failed="{hour.failed}">'
            f"<title>{escape(label)}</title>"
        )
        if hour.succeeded:
            body.append(
                f'<rect class="succeeded" x="{x:.2f}" y="{base - ok_h:.2f}" width="{bar_w:.2f}" '
                f'height="{ok_h:.2f}" fill="{SUCCEEDED}"/>'
            )
        if hour.failed:
            body.append(
                f'<rect class="failed" x="{x:.2f}" y="{base - ok_h - bad_h:.2f}" '
                f'width="{bar_w:.2f}" height="{bad_h:.2f}" fill="url(#{chart_id}-hatch)" '
                f'stroke="{FAILED}"/>'
            )
        body.append("</g>")
        if i % 6 == 0:
            body.append(
                f'<text x="{x + bar_w / 2:.2f}" y="{base + 15}" text-anchor="middle">'
                f"{escape(t('ops.chart.hour_tick', hour=local.strftime('%H')))}</text>"
            )
    desc = t(
        "ops.chart.hourly_desc",
        channel=channel_name(kind),
        ok=hours.succeeded,
        failed=hours.failed,
        rate=percent(hours.failure_rate),
    )
    title = t("ops.chart.hourly_title", channel=channel_name(kind))
    return _svg(chart_id, HOURLY_WIDTH, HOURLY_HEIGHT, title, desc, body)


@dataclass(frozen=True)
class _Bar:
    value: float
    text: str
    fill: str
    css: str


def _row_chart(
    chart_id: str, title: str, desc: str, rows: Sequence[tuple[str, list[_Bar]]], top: float
) -> Markup:
    """Horizontal bars, one group per row (a channel), each bar labelled with its value."""
    label_w, value_w, bar_h, gap = 80, 90, 14, 10
    width = 360
    plot_w = width - label_w - value_w
    group_h = max(1, len(rows[0][1]) if rows else 1) * (bar_h + 2) + gap
    height = TOP + group_h * len(rows) + 4
    body = [_hatch(f"{chart_id}-hatch", SLOWER)]
    for r, (label, bars) in enumerate(rows):
        y0 = TOP + r * group_h
        body.append(
            f'<text x="{label_w - 6}" y="{y0 + bar_h - 2}" text-anchor="end">{escape(label)}</text>'
        )
        for b, bar in enumerate(bars):
            y = y0 + b * (bar_h + 2)
            w = 0.0 if top <= 0 else plot_w * bar.value / top
            fill = f"url(#{chart_id}-hatch)" if bar.fill == "hatch" else bar.fill
            body.append(
                f'<rect class="{bar.css}" data-value="{bar.value:g}" x="{label_w}" y="{y}" '
                f'width="{w:.2f}" height="{bar_h}" fill="{fill}" stroke="{SLOWER}" '
                'stroke-width="0.5"/>'
                f'<text x="{label_w + w + 4:.2f}" y="{y + bar_h - 3}">{escape(bar.text)}</text>'
            )
    return _svg(chart_id, width, height, title, desc, body)


def failure_rate_chart(per_channel: Sequence[ChannelHours]) -> Markup:
    """The share of each channel's attempts of the last 24 h that ended in trouble."""
    rows = [
        (
            channel_name(h.kind),
            [_Bar(h.failure_rate or 0.0, percent(h.failure_rate), FAILED, "rate")],
        )
        for h in per_channel
    ]
    top = max((h.failure_rate or 0.0 for h in per_channel), default=0.0)
    desc = "；".join(f"{channel_name(h.kind)} {percent(h.failure_rate)}" for h in per_channel)
    return _row_chart(
        "chart-failure-rate", t("ops.chart.failure_title"), desc, rows, max(top, 0.05)
    )


def time_to_live_chart(per_channel: Sequence[TimeToLive]) -> Markup:
    """Median (solid) and 90th percentile (hatched) from publishing to live, per channel."""

    def seconds(value: timedelta | None) -> float:
        return 0.0 if value is None else value.total_seconds()

    rows = [
        (
            channel_name(ttl.kind),
            [
                _Bar(
                    seconds(ttl.median),
                    t("ops.chart.median_value", value=duration_text(ttl.median)),
                    SUCCEEDED,
                    "median",
                ),
                _Bar(
                    seconds(ttl.p90),
                    t("ops.chart.p90_value", value=duration_text(ttl.p90)),
                    "hatch",
                    "p90",
                ),
            ],
        )
        for ttl in per_channel
    ]
    top = max((seconds(ttl.p90) for ttl in per_channel), default=0.0)
    desc = "；".join(
        t(
            "ops.chart.ttl_desc",
            channel=channel_name(ttl.kind),
            median=duration_text(ttl.median),
            p90=duration_text(ttl.p90),
            n=ttl.count,
        )
        for ttl in per_channel
    )
    return _row_chart("chart-time-to-live", t("ops.chart.ttl_title"), desc, rows, top)
