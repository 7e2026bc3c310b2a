"""The negative's influence on the attention chart, on a scale of its own at the right.

The "negative influence" track (attention/negative_influence.py) is in latent units, not a share
of attention, so it gets its own axis; drawn over the same steps as the negative word's attention,
the chart answers the paper's question in one picture: when the negative is attended to, and when
it acts on the prediction.
"""

from dataclasses import dataclass, replace

import torch
from PIL import ImageDraw
from torch import Tensor

from .text import Font, draw_text, text_width
from .ticks import format_tick, value_ticks

INFLUENCE = "influence"  # the branch of the influence track (attention.maps.INFLUENCE)
INFLUENCE_COLOUR = (20, 20, 20)
AXIS_TITLE = "negative influence"


@dataclass(frozen=True)
class RightAxis:
    ticks: list[float]
    labels: list[str]
    width: int  # pixels its labels take to the right of the plot


def right_axis(values: list[Tensor], font: Font) -> RightAxis | None:
    """The influence's scale, from 0 to its largest value; None when there is nothing to draw."""
    finite = torch.cat([v[torch.isfinite(v)] for v in values]) if values else torch.zeros(0)
    if not finite.numel():
        return None
    high = max(finite.max().item(), 0.0)
    ticks = value_ticks(0.0, high if high > 0 else 1.0)
    labels = [format_tick(tick, ticks[1] - ticks[0]) for tick in ticks]
    return RightAxis(ticks, labels, max(text_width(label, font) for label in labels) + 12)


def draw_right_axis(draw: ImageDraw.ImageDraw, area, axis: RightAxis, font: Font, line_height: int):
    """The axis line, its ticks and title at the right of `area`; returns the area on its scale."""
    scaled = replace(area, low=axis.ticks[0], high=axis.ticks[-1])
    draw.line((area.right, area.top, area.right, area.bottom), fill=INFLUENCE_COLOUR)
    for tick, label in zip(axis.ticks, axis.labels):
        y = scaled.y_of(tick)
        draw.line((area.right, y, area.right + 4, y), fill=INFLUENCE_COLOUR)
        draw_text(draw, (area.right + 6, y), label, font, INFLUENCE_COLOUR, "lm")
    draw_text(draw, (area.right + axis.width, area.top - line_height / 2), AXIS_TITLE, font, INFLUENCE_COLOUR, "rm")
    return scaled
