"""Metric-vs-frame curves as PNG (PSNR / LPIPS / R_dist over 200 frames), drawn with PIL.

No plotting library is needed: a plain axes box, ticks, one polyline per series and a legend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        if v >= lo - 1e-9 * step:
            ticks.append(round(v, 10))
        v += step
    return ticks


def plot_curves(
    series: Mapping[str, Sequence[float]],
    path: str,
    title: str = "",
    xlabel: str = "frame",
    ylabel: str = "",
    size: tuple[int, int] = (720, 420),
    marks: Sequence[int] = (),
) -> str:
    """Draw each series (values per frame; NaN/inf skipped) and save a PNG at ``path``.

    ``marks`` draws dashed vertical lines at frame indices (e.g. 50 and 200 for the paper's
    short- and long-term frames). Returns ``path``.
    """
    if not series:
        raise ValueError("plot_curves needs at least one series")
    W, H = size
    left, right, top, bottom = 70, 20, 36, 50
    vals = [v for s in series.values() for v in s if math.isfinite(v)]
    if not vals:
        raise ValueError("plot_curves: every value is NaN or infinite; nothing to draw")
    n = max(len(s) for s in series.values())
    lo, hi = min(vals), max(vals)
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    lo, hi = lo - pad, hi + pad
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    pw, ph = W - left - right, H - top - bottom

    def px(i: float, v: float) -> tuple[float, float]:
        x = left + (i / max(n - 1, 1)) * pw
        y = top + (1 - (v - lo) / (hi - lo)) * ph
        return x, y

    d.rectangle([left, top, left + pw, top + ph], outline=(0, 0, 0))
    for t in _nice_ticks(lo, hi):
        _, y = px(0, t)
        d.line([left - 4, y, left, y], fill=(0, 0, 0))
        d.line([left, y, left + pw, y], fill=(230, 230, 230))
        d.text((4, y - 6), f"{t:g}", fill=(0, 0, 0))
    for t in _nice_ticks(0, n - 1):
        x, _ = px(t, lo)
        d.line([x, top + ph, x, top + ph + 4], fill=(0, 0, 0))
        d.text((x - 8, top + ph + 8), f"{int(t)}", fill=(0, 0, 0))
    for m in marks:
        if 0 <= m < n:
            x, _ = px(m, lo)
            for y0 in range(top, top + ph, 8):
                d.line([x, y0, x, min(y0 + 4, top + ph)], fill=(120, 120, 120))
    for k, (name, s) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        run: list[tuple[float, float]] = []
        for i, v in enumerate(list(s) + [math.nan]):
            if math.isfinite(v):
                run.append(px(i, v))
            else:
                if len(run) > 1:
                    d.line(run, fill=colour, width=2)
                elif len(run) == 1:
                    x, y = run[0]
                    d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
                run = []
        ly = top + 6 + 14 * k
        d.line([left + pw - 150, ly + 6, left + pw - 130, ly + 6], fill=colour, width=3)
        d.text((left + pw - 125, ly), name, fill=(0, 0, 0))
    d.text((left, 10), title, fill=(0, 0, 0))
    d.text((left + pw // 2 - 20, H - 20), xlabel, fill=(0, 0, 0))
    d.text((4, 16), ylabel, fill=(0, 0, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)
    return path
