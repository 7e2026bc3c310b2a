"""Attention strength per sampler step as a line chart, the reading of the paper's Fig. 1
(arXiv 2406.02965): positive-prompt words rise from the first steps, negative-prompt words
(carried by the unconditional branch) only after the negative prompt starts."""

import math
from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .convert import pil_to_image
from .dashes import draw_dashed_line
from .evaluation_marks import shade_not_evaluated
from .guidance_marks import cfg_values, draw_cfg_line, shade_unguided
from .influence_axis import INFLUENCE, INFLUENCE_COLOUR, draw_right_axis, right_axis
from .text import RGB, Font, draw_text, fit_text, label_font, text_height, text_width
from .ticks import format_tick, step_ticks, value_ticks

BRANCHES = ("positive", "unconditional", INFLUENCE)
SOLID = ("positive", INFLUENCE)  # the unconditional branch is dashed
# matplotlib's "tab10": distinct hues that stay apart on white.
SERIES_COLOURS: list[RGB] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
BACKGROUND = (255, 255, 255)
AXIS_COLOUR = (40, 40, 40)
GRID_COLOUR = (228, 228, 228)
MARKER_COLOUR = (90, 90, 90)
LINE_WIDTH = 2


@dataclass(frozen=True)
class Series:
    """One line of the chart: a word's attention strength at each sampler step.

    `values` is [steps] with NaN where the word is absent; `branch` says which half of
    classifier-free guidance it was recorded in, "positive" (solid) or "unconditional" (dashed),
    or "influence" for the negative's influence (solid, on its own scale at the right).
    """

    label: str
    values: Tensor
    branch: str = "positive"

    def __post_init__(self) -> None:
        if self.branch not in BRANCHES:
            raise ValueError(f"Series {self.label!r}: branch {self.branch!r} must be one of {BRANCHES}.")
        if self.values.ndim != 1:
            raise ValueError(f"Series {self.label!r}: values must be shaped [steps], "
                             f"got {tuple(self.values.shape)}.")


@dataclass(frozen=True)
class _PlotArea:
    """Pixel box of the plotting area and the data ranges it shows."""

    left: int
    top: int
    right: int
    bottom: int
    last_step: int
    low: float
    high: float

    def x_of(self, step: float) -> float:
        return self.left + (self.right - self.left) * step / self.last_step

    def y_of(self, value: float) -> float:
        return self.bottom - (self.bottom - self.top) * (value - self.low) / (self.high - self.low)


def strength_chart(series: list[Series], title: str, marker_step: int | None = None,
                   width: int = 768, height: int = 432, cfg: Tensor | None = None,
                   not_evaluated: list[int] = ()) -> Tensor:
    """Draw `series` as lines over sampler steps; returns an IMAGE [1, height, width, 3].

    Positive-branch series are solid, unconditional-branch series dashed; NaN breaks a line.
    Influence series are drawn on a scale of their own at the right (influence_axis.py).
    `marker_step`, if given, adds a dashed vertical line labelled "negative starts". `cfg`, if
    given ([steps], NaN where unknown), adds the guidance schedule: the cfg of each step as a
    thin grey line, and the steps sampled without guidance shaded. `not_evaluated` steps (a cache
    skipped the model there) are shaded and labelled "not evaluated".
    """
    if width < 320 or height < 200:
        raise ValueError(f"Chart size {width}x{height} is too small; use at least 320x200.")
    if marker_step is not None and marker_step < 0:
        raise ValueError(f"marker_step {marker_step} must be a sampler step, 0 or more.")
    title_font, tick_font = label_font(max(12, height // 24)), label_font(max(10, height // 34))
    values = [s.values.detach().float().cpu() for s in series]
    y_ticks, y_labels = _attention_axis([v for s, v in zip(series, values) if s.branch != INFLUENCE])
    guidance = cfg_values(cfg)
    last_step = max([len(v) - 1 for v in values] + [1, marker_step or 0, len(guidance) - 1])
    influence_axis = right_axis([v for s, v in zip(series, values) if s.branch == INFLUENCE], tick_font)

    legend_width = min(width // 3, max([text_width(s.label, tick_font) for s in series] + [0]) + 44)
    line_height = 2 * text_height(tick_font)
    area = _PlotArea(left=max(text_width(label, tick_font) for label in y_labels) + 16,
                     top=2 * text_height(title_font) + line_height,
                     right=width - legend_width - 16 - (influence_axis.width if influence_axis else 0),
                     bottom=height - 2 * line_height,
                     last_step=last_step, low=y_ticks[0], high=y_ticks[-1])

    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw_text(draw, (width / 2, text_height(title_font)), fit_text(title, title_font, width - 16),
              title_font, AXIS_COLOUR, "mm")
    shade_unguided(draw, area, guidance, tick_font)
    shade_not_evaluated(draw, area, list(not_evaluated), tick_font)
    _draw_axes(draw, area, y_ticks, y_labels, tick_font, line_height)
    draw_cfg_line(draw, area, guidance, tick_font)
    if marker_step is not None:
        _draw_marker(draw, area, marker_step, tick_font)
    influence_area = draw_right_axis(draw, area, influence_axis, tick_font, line_height) if influence_axis else area
    for index, (line, line_values) in enumerate(zip(series, values)):
        _draw_series(draw, influence_area if line.branch == INFLUENCE else area, line_values,
                     _colour(index, line), line.branch)
    legend_left = area.right + 16 + (influence_axis.width if influence_axis else 0)
    _draw_legend(draw, series, (legend_left, area.top, width, height), tick_font, line_height)
    return pil_to_image(canvas)


def _attention_axis(values: list[Tensor]) -> tuple[list[float], list[str]]:
    """Ticks and their labels of the attention scale (left), from 0 or below to the largest value."""
    finite = torch.cat([v[torch.isfinite(v)] for v in values]) if values else torch.zeros(0)
    low, high = (min(0.0, finite.min().item()), finite.max().item()) if finite.numel() else (0.0, 1.0)
    ticks = value_ticks(low, high if high > low else low + 1.0)
    return ticks, [format_tick(tick, ticks[1] - ticks[0]) for tick in ticks]


def _draw_axes(draw: ImageDraw.ImageDraw, area: _PlotArea, y_ticks: list[float], y_labels: list[str],
               font: Font, line_height: int) -> None:
    for tick, label in zip(y_ticks, y_labels):
        y = area.y_of(tick)
        draw.line((area.left, y, area.right, y), fill=GRID_COLOUR)
        draw_text(draw, (area.left - 6, y), label, font, AXIS_COLOUR, "rm")
    for step in step_ticks(area.last_step):
        if step <= area.last_step:
            x = area.x_of(step)
            draw.line((x, area.bottom, x, area.bottom + 4), fill=AXIS_COLOUR)
            draw_text(draw, (x, area.bottom + 6), str(step), font, AXIS_COLOUR, "mt")
    draw.line((area.left, area.top, area.left, area.bottom, area.right, area.bottom), fill=AXIS_COLOUR)
    draw_text(draw, ((area.left + area.right) / 2, area.bottom + 1.5 * line_height),
              "sampling step", font, AXIS_COLOUR, "mt")
    draw_text(draw, (6, area.top - line_height / 2), "attention strength", font, AXIS_COLOUR, "lm")


def _draw_marker(draw: ImageDraw.ImageDraw, area: _PlotArea, marker_step: int, font: Font) -> None:
    x = area.x_of(marker_step)
    draw_dashed_line(draw, [(x, area.top), (x, area.bottom)], MARKER_COLOUR, width=1, dash=5, gap=4)
    label = "negative starts"
    if x + 4 + text_width(label, font) <= area.right:
        draw_text(draw, (x + 4, area.top + 2), label, font, MARKER_COLOUR, "lt")
    else:
        draw_text(draw, (x - 4, area.top + 2), label, font, MARKER_COLOUR, "rt")


def _draw_series(draw: ImageDraw.ImageDraw, area: _PlotArea, values: Tensor, colour: RGB,
                 branch: str) -> None:
    """Draw one series, one polyline per run of consecutive present (non-NaN) steps."""
    run: list[tuple[float, float]] = []
    for step, value in enumerate(values.tolist() + [math.nan]):
        if math.isfinite(value):
            run.append((area.x_of(step), area.y_of(value)))
            continue
        if not run:
            continue
        if len(run) == 1:
            x, y = run[0]
            draw.ellipse((x - LINE_WIDTH, y - LINE_WIDTH, x + LINE_WIDTH, y + LINE_WIDTH), fill=colour)
        elif branch in SOLID:
            draw.line(run, fill=colour, width=LINE_WIDTH)
        else:
            draw_dashed_line(draw, run, colour, width=LINE_WIDTH)
        run = []


def _draw_legend(draw: ImageDraw.ImageDraw, series: list[Series], box: tuple[int, int, int, int],
                 font: Font, line_height: int) -> None:
    """One row per series inside `box` (left, top, right, bottom); rows that do not fit are counted."""
    left, top, right, bottom = box
    rows = max(1, (bottom - top) // line_height)
    shown = series if len(series) <= rows else series[:rows - 1]
    for index, line in enumerate(shown):
        y = top + index * line_height + line_height / 2
        colour = _colour(index, line)
        if line.branch in SOLID:
            draw.line((left, y, left + 28, y), fill=colour, width=LINE_WIDTH)
        else:
            draw_dashed_line(draw, [(left, y), (left + 28, y)], colour, width=LINE_WIDTH)
        label = fit_text(line.label, font, right - left - 40)
        draw_text(draw, (left + 36, y), label, font, AXIS_COLOUR, "lm")
    if len(shown) < len(series):
        y = top + len(shown) * line_height + line_height / 2
        draw_text(draw, (left, y), f"+{len(series) - len(shown)} more", font, AXIS_COLOUR, "lm")


def _colour(index: int, line: Series) -> RGB:
    return INFLUENCE_COLOUR if line.branch == INFLUENCE else SERIES_COLOURS[index % len(SERIES_COLOURS)]
