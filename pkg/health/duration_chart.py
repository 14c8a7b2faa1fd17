"""Durations over time as a small inline SVG: one dot per finished run, coloured by status.

Inline SVG needs no script and nothing from elsewhere, so the page's Content-Security-Policy
(no script, no image source) still holds. The x axis is the run's tick (runs far apart in time
stay far apart), the y axis its duration from 0 to the slowest shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from financial.pkg.health.page_format import duration, e, local
from financial.pkg.scheduler.store import RunRecord

WIDTH = 600
HEIGHT = 160
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 10, 12, 24


def duration_chart(runs: Sequence[RunRecord], zone_name: str, *, label: str) -> str:
    """The chart for `runs` (any order), or a short note when none has a duration.

    `label` is the chart's accessible name (text, escaped here)."""
    points = sorted(
        (r for r in runs if r.duration_ms is not None),
        key=lambda r: (r.scheduled_at, r.attempt),
    )
    if not points:
        return '<p class="empty">No finished run to chart yet.</p>'
    first, last = points[0].scheduled_at, points[-1].scheduled_at
    span_s = (last - first).total_seconds()
    slowest_ms = max(r.duration_ms or 0.0 for r in points) or 1.0
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM

    def x(run: RunRecord) -> float:
        if span_s <= 0:
            return _LEFT + plot_w / 2
        return _LEFT + plot_w * (run.scheduled_at - first).total_seconds() / span_s

    def y(run: RunRecord) -> float:
        return _TOP + plot_h * (1 - (run.duration_ms or 0.0) / slowest_ms)

    coords = [(x(r), y(r)) for r in points]
    line = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
    dots = "".join(
        f'<circle class="s-{r.status.value}" cx="{px:.1f}" cy="{py:.1f}" r="3">'
        f"<title>{e(_dot_title(r, zone_name))}</title></circle>"
        for r, (px, py) in zip(points, coords, strict=True)
    )
    bottom = HEIGHT - _BOTTOM
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{e(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{e(label)}</title>"
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}"/>'
        f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{WIDTH - _RIGHT}" y2="{bottom}"/>'
        f'<text x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end">'
        f"{e(duration(slowest_ms / 1000.0))}</text>"
        f'<text x="{_LEFT - 4}" y="{bottom}" text-anchor="end">0</text>'
        f'<text x="{_LEFT}" y="{HEIGHT - 6}">{e(_day(points[0], zone_name))}</text>'
        f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{e(_day(points[-1], zone_name))}</text>"
        f'<polyline class="line" points="{line}"/>{dots}</svg>'
    )


def _dot_title(run: RunRecord, zone_name: str) -> str:
    took = duration((run.duration_ms or 0.0) / 1000.0)
    return f"{run.status.value} · tick {local(run.scheduled_at, zone_name)} · took {took}"


def _day(run: RunRecord, zone_name: str) -> str:
    return local(run.scheduled_at, zone_name)[4:20]  # "2026-03-02 09:22"
