"""Dashed polylines for PIL, which only draws solid lines."""

import math

from PIL import ImageDraw

from .text import RGB


def draw_dashed_line(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], fill: RGB,
                     width: int = 2, dash: float = 8.0, gap: float = 5.0) -> None:
    """Draw the polyline through `points` as dashes of `dash` px separated by `gap` px.

    The dash pattern carries on across vertices, so a bent line keeps an even rhythm.
    """
    period = dash + gap
    travelled = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        position = 0.0
        while position < length:
            phase = (travelled + position) % period
            if phase < dash:
                end = min(length, position + dash - phase)
                start_at, end_at = position / length, end / length
                draw.line((x0 + (x1 - x0) * start_at, y0 + (y1 - y0) * start_at,
                           x0 + (x1 - x0) * end_at, y0 + (y1 - y0) * end_at), fill=fill, width=width)
            else:
                end = min(length, position + period - phase)
            position = end
        travelled += length
