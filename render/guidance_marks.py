"""The guidance schedule on the attention chart: each step's cfg as a thin line on a scale of its
own (labelled at both ends), and the steps sampled without guidance shaded, with their label."""

import math

from PIL import ImageDraw
from torch import Tensor

from .text import Font, draw_text, text_width

CFG_COLOUR = (110, 110, 140)  # not a grey: text anti-aliasing makes greys
UNGUIDED_SHADE = (240, 240, 250)
UNGUIDED_LABEL = (130, 130, 130)


def cfg_values(cfg: Tensor | None) -> list[float]:
    """[steps] cfg per step, NaN where unknown; an empty list when nothing was recorded."""
    if cfg is None or cfg.numel() == 0:
        return []
    values = [float(value) for value in cfg.detach().float().cpu().tolist()]
    return values if any(math.isfinite(value) for value in values) else []


def unguided_runs(values: list[float]) -> list[tuple[int, int]]:
    """(first, last) step of each run of steps sampled without guidance (cfg 1)."""
    runs, first = [], None
    for step, value in enumerate(values + [math.nan]):
        if math.isfinite(value) and value == 1.0:
            first = step if first is None else first
        elif first is not None:
            runs.append((first, step - 1))
            first = None
    return runs


def shade_unguided(draw: ImageDraw.ImageDraw, area, values: list[float], font: Font) -> None:
    """Shade each run of unguided steps (half a step either side of its points); drawn first."""
    for first, last in unguided_runs(values):
        shade_steps(draw, area, (first, last), UNGUIDED_SHADE, ("no guidance", UNGUIDED_LABEL), font, at_top=False)


def shade_steps(draw: ImageDraw.ImageDraw, area, steps: tuple[int, int], fill, label: tuple[str, tuple], font: Font,
                at_top: bool) -> None:
    """Shade steps first..last of the chart (half a step either side, cut at the plot) with its
    label (text, colour) at the top or the bottom of the band, where it fits."""
    first, last = steps
    left = max(area.left, area.x_of(first - 0.5))
    right = min(area.right, area.x_of(last + 0.5))
    draw.rectangle((left, area.top, right, area.bottom), fill=fill)
    text, colour = label
    if text_width(text, font) <= right - left:
        y, anchor = (area.top + 4, "mt") if at_top else (area.bottom - 4, "mb")
        draw_text(draw, ((left + right) / 2, y), text, font, colour, anchor)


def draw_cfg_line(draw: ImageDraw.ImageDraw, area, values: list[float], font: Font) -> None:
    """cfg per step as a thin line: its highest value at the top of the plot, 0 at the bottom."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return
    top = max(finite) or 1.0

    def y_of(value: float) -> float:
        return area.bottom - (area.bottom - area.top) * 0.9 * value / top

    points = [(area.x_of(step), y_of(value)) for step, value in enumerate(values) if math.isfinite(value)]
    if len(points) > 1:
        draw.line(points, fill=CFG_COLOUR, width=1)
    for index in sorted({0, len(points) - 1}):
        (x, y), value = points[index], finite[index]
        first = index == 0
        draw_text(draw, (x + (2 if first else -2), y - 2), f"cfg {value:g}", font, CFG_COLOUR, "lb" if first else "rb")
