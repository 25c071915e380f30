"""Inline SVG pictures: an entry's status badge (as healthchecks.io offers), the small picture
of its last runs, and the plot of durations and lateness over time. Every text is escaped."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from monitoring.web.html import Markup, e

COLOURS = {"ok": "#2e7d32", "success": "#2e7d32", "paused": "#6d6d6d", "skipped_paused": "#6d6d6d",
           "running": "#1565c0", "late": "#ef6c00", "missed": "#c62828", "failing": "#b71c1c",
           "failure": "#b71c1c", "lost": "#b71c1c", "never ran": "#90a4ae", "skipped by overlap": "#8e24aa",
           "skipped_overlap": "#8e24aa", "dead-lettered": "#4e342e", "dead_lettered": "#4e342e",
           "retry": "#f9a825", "expired": "#795548", "skipped_budget": "#5d4037", "skipped_duplicate": "#9e9e9e"}
_GREY = "#90a4ae"


def badge(label: str, state: str) -> bytes:
    """A 20 px high two-part badge: ``label`` | ``state``."""
    left_w, right_w = 7 * len(label) + 12, 7 * len(state) + 12
    colour = COLOURS.get(state, _GREY)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{left_w + right_w}" height="20" role="img" '
            f'aria-label="{e(label)}: {e(state)}"><title>{e(label)}: {e(state)}</title>'
            f'<rect width="{left_w}" height="20" fill="#555"/><rect x="{left_w}" width="{right_w}" height="20" '
            f'fill="{colour}"/><g fill="#fff" font-family="Verdana,sans-serif" font-size="11">'
            f'<text x="6" y="14">{e(label)}</text><text x="{left_w + 6}" y="14">{e(state)}</text></g></svg>').encode()


def run_strip(runs: Sequence[tuple[str, float | None]]) -> Markup:
    """The last runs, oldest left: one bar each, coloured by status, taller when later (lateness)."""
    bars = "".join(_bar(i, status, None if late is None else round(late))
                   for i, (status, late) in enumerate(reversed(list(runs))))
    return Markup(f'<svg width="{max(len(runs), 1) * 7}" height="16" role="img" aria-label="last runs">{bars}</svg>')


@functools.lru_cache(maxsize=4096)  # a page of 1,000 rows draws the same few bars again and again
def _bar(i: int, status: str, lateness_s: int | None) -> str:
    height = 6 + min(max(lateness_s or 0, 0), 60) / 60.0 * 10
    late = "" if lateness_s is None else f", {lateness_s} s late"
    return (f'<rect x="{i * 7}" y="{16 - height:.1f}" width="5" height="{height:.1f}" '
            f'fill="{COLOURS.get(status, _GREY)}"><title>{e(status)}{late}</title></rect>')


def durations_plot(points: Sequence[tuple[datetime, float | None, float | None]], *, width: int = 640,
                   height: int = 160) -> Markup:
    """Durations (blue) and lateness (orange), in seconds, against finish time; one dot per run."""
    usable = [(t, d, l) for t, d, l in points if d is not None or l is not None]
    if not usable:
        return Markup('<p class="muted">no run with a duration or lateness yet</p>')
    start, end = min(p[0] for p in usable).timestamp(), max(p[0] for p in usable).timestamp()
    top = max(max(d or 0.0, l or 0.0) for _, d, l in usable) or 1.0
    span = (end - start) or 1.0
    pad = 30

    def xy(t: datetime, v: float) -> tuple[float, float]:
        return (pad + (t.timestamp() - start) / span * (width - pad - 5),
                height - 15 - max(v, 0.0) / top * (height - 25))

    dots = []
    for t, duration_s, lateness_s in usable:
        for value, colour, name in ((duration_s, "#1565c0", "duration"), (lateness_s, "#ef6c00", "lateness")):
            if value is not None:
                x, y = xy(t, value)
                dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>{name} '
                            f'{value:.2f} s at {e(t.isoformat(timespec="seconds"))}</title></circle>')
    axis = (f'<line x1="{pad}" y1="{height - 15}" x2="{width - 5}" y2="{height - 15}" stroke="#999"/>'
            f'<line x1="{pad}" y1="10" x2="{pad}" y2="{height - 15}" stroke="#999"/>'
            f'<text x="2" y="14" font-size="10">{top:.1f}s</text><text x="2" y="{height - 15}" font-size="10">0</text>'
            f'<text x="{pad}" y="{height - 2}" font-size="10" fill="#1565c0">● duration</text>'
            f'<text x="{pad + 80}" y="{height - 2}" font-size="10" fill="#ef6c00">● lateness</text>')
    return Markup(f'<svg width="{width}" height="{height}" role="img" aria-label="durations and lateness">'
                  f'{axis}{"".join(dots)}</svg>')
