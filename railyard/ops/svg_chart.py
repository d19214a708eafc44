"""A line chart drawn as inline SVG on the server: no JavaScript, no build step. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

WIDTH_PX = 640
HEIGHT_PX = 160
MARGIN_PX = 40


def line_chart(
    points: Sequence[tuple[datetime, float]], title: str, label: Callable[[float], str] = lambda v: f"{v:g}"
) -> str:
    """An SVG line chart of ``(when, value)`` points (any order), its axis labelled with ``label``."""
    head = f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
    head += f'viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}"><title>{escape(title)}</title>'
    if not points:
        return head + f'<text x="{MARGIN_PX}" y="{HEIGHT_PX // 2}">no data</text></svg>'
    ordered = sorted(points)
    t0, t1 = ordered[0][0].timestamp(), ordered[-1][0].timestamp()
    top = max(v for _, v in ordered) or 1.0
    inner_w, inner_h = WIDTH_PX - 2 * MARGIN_PX, HEIGHT_PX - 2 * MARGIN_PX

    def xy(when: datetime, value: float) -> tuple[float, float]:
        x = MARGIN_PX + (inner_w * (when.timestamp() - t0) / (t1 - t0) if t1 > t0 else inner_w / 2)
        return round(x, 1), round(MARGIN_PX + inner_h * (1 - value / top), 1)

    coords = [xy(w, v) for w, v in ordered]
    path = " ".join(f"{x},{y}" for x, y in coords)
    dots = "".join(f'<circle cx="{x}" cy="{y}" r="3"/>' for x, y in coords)
    axis = (
        f'<line x1="{MARGIN_PX}" y1="{HEIGHT_PX - MARGIN_PX}" x2="{WIDTH_PX - MARGIN_PX}" '
        f'y2="{HEIGHT_PX - MARGIN_PX}" stroke="#999"/>'
        f'<text x="2" y="{MARGIN_PX}" font-size="11">{escape(label(top))}</text>'
        f'<text x="{MARGIN_PX}" y="{HEIGHT_PX - 10}" font-size="11">{ordered[0][0]:%Y-%m-%d %H:%M}</text>'
        f'<text x="{WIDTH_PX - MARGIN_PX}" y="{HEIGHT_PX - 10}" font-size="11" text-anchor="end">'
        f"{ordered[-1][0]:%Y-%m-%d %H:%M}</text>"
    )
    line = f'<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="{path}"/>'
    return head + axis + line + f'<g fill="#2a6fdb">{dots}</g></svg>'
