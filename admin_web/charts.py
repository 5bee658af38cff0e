"""Server-rendered SVG charts from GetUsage buckets.

Only geometry is computed here; the templates draw it, escaped like any text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from admin_web.render import fmt_ms, fmt_num, fmt_usd
from claudecode.v1 import admin_pb2


@dataclass(frozen=True)
class Range:
    name: str
    label: str
    seconds: int
    bucket_seconds: int
    short: str = ""


RANGES = [
    Range("1h", "Last hour", 3600, 60, "1 h"),
    Range("24h", "Last 24 hours", 86400, 3600, "24 h"),
    Range("7d", "Last 7 days", 7 * 86400, 6 * 3600, "7 d"),
    Range("30d", "Last 30 days", 30 * 86400, 86400, "30 d"),
]
RANGES_BY_NAME = {r.name: r for r in RANGES}
DEFAULT_RANGE = "24h"

WIDTH = 440
HEIGHT = 180
LEFT = 46
RIGHT = 8
TOP = 10
BOTTOM = 24


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    title: str


@dataclass
class Line:
    points: str
    css: str
    label: str
    # Points with no neighbour to draw a segment to: a polyline alone shows nothing there.
    dots: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class Chart:
    title: str
    total: str
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    bar_css: str = "bar"
    lines: list[Line] = field(default_factory=list)
    yticks: list[Tick] = field(default_factory=list)
    xticks: list[Tick] = field(default_factory=list)
    empty: bool = True
    summary: str = ""


def window(rng: Range, now_ms: int) -> tuple[int, int, list[int]]:
    """Start and end (ms) aligned to buckets, and every bucket's start."""
    bucket_ms = rng.bucket_seconds * 1000
    count = rng.seconds // rng.bucket_seconds
    last = (now_ms // bucket_ms) * bucket_ms
    starts = [last - (count - 1 - i) * bucket_ms for i in range(count)]
    return starts[0], now_ms, starts


def fill(
    buckets: Sequence[admin_pb2.UsageBucket], starts: list[int], bucket_ms: int
) -> list[admin_pb2.UsageBucket]:
    """One bucket per start, zero where the core returned none."""
    by_slot: dict[int, admin_pb2.UsageBucket] = {}
    first = starts[0]
    for bucket in buckets:
        slot = (bucket.start_time_ms - first) // bucket_ms
        if 0 <= slot < len(starts):
            by_slot[int(slot)] = bucket
    return [by_slot.get(i, admin_pb2.UsageBucket(start_time_ms=s)) for i, s in enumerate(starts)]


def _nice_max(value: float, integer: bool = False) -> float:
    if integer:
        top = max(2, int(-(-value // 1)))
        nice = _nice_max(float(top))
        return nice if nice % 2 == 0 else nice + 1
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _time_label(ms: int, bucket_seconds: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    if bucket_seconds >= 86400:
        return moment.strftime("%b %d")
    if bucket_seconds >= 3600 * 6:
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%H:%M")


def _frame(chart: Chart, top: float, fmt: Callable[[float], str], starts: list[int],
           bucket_seconds: int) -> None:
    plot_h = HEIGHT - TOP - BOTTOM
    chart.yticks = [Tick(TOP + plot_h * (1 - f), fmt(top * f) if f else "0")
                    for f in (0.0, 0.5, 1.0)]
    plot_w = WIDTH - LEFT - RIGHT
    n = len(starts)
    picks = sorted({0, n // 2, n - 1}) if n else []
    chart.xticks = [
        Tick(LEFT + plot_w * (i + 0.5) / n, _time_label(starts[i], bucket_seconds)) for i in picks
    ]


def bar_chart(
    title: str,
    series: list[admin_pb2.UsageBucket],
    value: Callable[[admin_pb2.UsageBucket], float],
    fmt: Callable[[float], str],
    total: str,
    bucket_seconds: int,
    css: str = "bar",
    integer: bool = False,
) -> Chart:
    chart = Chart(title=title, total=total, bar_css=css)
    values = [value(b) for b in series]
    top = _nice_max(max(values, default=0.0), integer)
    starts = [b.start_time_ms for b in series]
    _frame(chart, top, fmt, starts, bucket_seconds)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(series))
    gap = min(2.0, slot * 0.2)
    for i, (bucket, v) in enumerate(zip(series, values, strict=True)):
        h = plot_h * (v / top) if top else 0.0
        if v > 0:
            h = max(h, 1.5)
        chart.bars.append(
            Bar(
                x=round(LEFT + i * slot + gap / 2, 2),
                y=round(TOP + plot_h - h, 2),
                w=round(max(slot - gap, 0.5), 2),
                h=round(h, 2),
                title=f"{_time_label(bucket.start_time_ms, bucket_seconds)}: {fmt(v)}",
            )
        )
    chart.empty = not any(values)
    chart.summary = f"{title}: {total} over the range"
    return chart


def line_chart(
    title: str,
    series: list[admin_pb2.UsageBucket],
    lines: list[tuple[str, str, Callable[[admin_pb2.UsageBucket], float]]],
    fmt: Callable[[float], str],
    total: str,
    bucket_seconds: int,
) -> Chart:
    chart = Chart(title=title, total=total)
    all_values = [fn(b) for _, _, fn in lines for b in series]
    top = _nice_max(max(all_values, default=0.0))
    starts = [b.start_time_ms for b in series]
    _frame(chart, top, fmt, starts, bucket_seconds)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = max(1, len(series))
    for label, css, fn in lines:
        points: list[tuple[float, float]] = []
        for i, bucket in enumerate(series):
            if bucket.requests == 0:
                continue
            x = LEFT + plot_w * (i + 0.5) / n
            y = TOP + plot_h * (1 - fn(bucket) / top)
            points.append((round(x, 1), round(y, 1)))
        # The polyline joins consecutive points, so only a lone one needs a dot.
        dots = points if len(points) == 1 else []
        text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        chart.lines.append(Line(text, css, label, dots))
    chart.empty = not any(all_values)
    chart.summary = f"{title}: {total}"
    return chart


def overview(
    buckets: Sequence[admin_pb2.UsageBucket], totals: admin_pb2.UsageBucket, rng: Range,
    starts: list[int],
) -> list[Chart]:
    series = fill(buckets, starts, rng.bucket_seconds * 1000)
    b = rng.bucket_seconds
    return [
        bar_chart("Requests", series, lambda x: x.requests, fmt_num,
                  fmt_num(totals.requests), b, integer=True),
        bar_chart("Errors", series, lambda x: x.errors, fmt_num, fmt_num(totals.errors), b,
                  css="bar bar-error", integer=True),
        line_chart(
            "Latency",
            series,
            [("p50", "line line-p50", lambda x: x.latency_p50_ms),
             ("p95", "line line-p95", lambda x: x.latency_p95_ms)],
            fmt_ms,
            f"p50 {fmt_ms(totals.latency_p50_ms)} · p95 {fmt_ms(totals.latency_p95_ms)}",
            b,
        ),
        bar_chart("Tokens", series, lambda x: x.input_tokens + x.output_tokens, fmt_num,
                  fmt_num(totals.input_tokens + totals.output_tokens), b, css="bar bar-tokens"),
        bar_chart("Cost", series, lambda x: x.cost_usd, fmt_usd, fmt_usd(totals.cost_usd), b,
                  css="bar bar-cost"),
    ]


@dataclass
class BreakdownRow:
    name: str
    link: str
    bucket: admin_pb2.UsageBucket
    share: float


def breakdown(
    buckets: Sequence[admin_pb2.UsageBucket], name_of: Callable[[admin_pb2.UsageBucket], str],
    link_of: Callable[[admin_pb2.UsageBucket], str],
) -> list[BreakdownRow]:
    """Rows by series (one bucket each), busiest first, with the share for a bar."""
    merged: dict[str, admin_pb2.UsageBucket] = {}
    for bucket in buckets:
        key = bucket.key_id or bucket.model
        if key in merged:
            into = merged[key]
            into.requests += bucket.requests
            into.errors += bucket.errors
            into.input_tokens += bucket.input_tokens
            into.output_tokens += bucket.output_tokens
            into.cost_usd += bucket.cost_usd
            into.latency_p95_ms = max(into.latency_p95_ms, bucket.latency_p95_ms)
        else:
            copy = admin_pb2.UsageBucket()
            copy.CopyFrom(bucket)
            merged[key] = copy
    rows = sorted(merged.values(), key=lambda x: x.requests, reverse=True)
    most = max((r.requests for r in rows), default=0) or 1
    return [BreakdownRow(name_of(r), link_of(r), r, round(100 * r.requests / most, 1))
            for r in rows]
