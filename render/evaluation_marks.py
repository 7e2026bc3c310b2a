"""Steps the model was not evaluated at, marked in the views instead of left as holes.

A cache (EasyCache, LazyCache, a pack's step cache) reuses an earlier prediction for some steps:
no attention was computed there, so no map exists. A gap in a line or a grey cell would read
as "the word was absent"; these marks say what happened.
"""

from PIL import Image, ImageDraw

from .guidance_marks import shade_steps
from .text import Font

NOT_EVALUATED_SHADE = (250, 238, 228)
NOT_EVALUATED_LABEL = (150, 110, 80)
NOT_EVALUATED_FILL = (236, 226, 216)


def step_runs(steps: list[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive steps in `steps`."""
    runs = []
    for step in sorted(set(steps)):
        if runs and runs[-1][1] == step - 1:
            runs[-1] = (runs[-1][0], step)
        else:
            runs.append((step, step))
    return runs


def shade_not_evaluated(draw: ImageDraw.ImageDraw, area, steps: list[int], font: Font) -> None:
    """Shade the chart's not-evaluated steps (half a step either side), labelled where it fits."""
    for run in step_runs(steps):
        shade_steps(draw, area, run, NOT_EVALUATED_SHADE, ("not evaluated", NOT_EVALUATED_LABEL), font, at_top=True)


def not_evaluated_cell(size: int) -> Image.Image:
    """A grid cell for a step the model skipped: a cross, unlike the absent word's single slash."""
    cell = Image.new("RGB", (size, size), NOT_EVALUATED_FILL)
    draw = ImageDraw.Draw(cell)
    draw.line((0, size - 1, size - 1, 0), fill=NOT_EVALUATED_LABEL, width=2)
    draw.line((0, 0, size - 1, size - 1), fill=NOT_EVALUATED_LABEL, width=2)
    return cell
