"""The word x step grid: one coloured attention map per prompt word (rows) and sampler step
(columns), the picture behind the paper's Fig. 1 (arXiv 2406.02965)."""

from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .colormaps import apply_colormap
from .evaluation_marks import not_evaluated_cell
from .convert import pil_to_image, to_uint8
from .resize import upsample_maps
from .text import draw_text, fit_text, label_font

BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (30, 30, 30)
# A word missing at a step (e.g. the negative prompt before it starts) must not look like
# "attention zero", which every colormap paints as a real colour: grey with a slash instead.
ABSENT_FILL = (190, 190, 190)
ABSENT_SLASH = (120, 120, 120)


@dataclass(frozen=True)
class GridLayout:
    """Where everything sits in a word x step grid; sizes in pixels."""

    steps: int
    words: int
    cell_size: int
    gap: int = 2

    @property
    def font_size(self) -> int:
        return max(10, self.cell_size // 6)

    @property
    def label_width(self) -> int:
        """Width of the left column holding the word labels."""
        return 2 * self.cell_size

    @property
    def header_height(self) -> int:
        """Height of the top row holding the step labels."""
        return 2 * self.font_size

    @property
    def width(self) -> int:
        return self.label_width + self.steps * (self.cell_size + self.gap)

    @property
    def height(self) -> int:
        return self.header_height + self.words * (self.cell_size + self.gap)

    def cell_origin(self, step: int, word: int) -> tuple[int, int]:
        """Top-left pixel (x, y) of the cell for `word` at `step`."""
        return (self.label_width + step * (self.cell_size + self.gap),
                self.header_height + word * (self.cell_size + self.gap))


def word_step_grid(maps: Tensor, word_labels: list[str], step_labels: list[str], colormap: str,
                   cell_size: int = 96, not_evaluated: list[int] = ()) -> Tensor:
    """Draw maps [steps, words, h, w] (already 0..1, NaN = word absent) as an IMAGE [1, H, W, 3].

    Rows are words, columns are steps; absent cells are grey with a diagonal slash, and every cell
    of a `not_evaluated` column (an index into the columns: a cache skipped the model) a cross.
    """
    if maps.ndim != 4:
        raise ValueError(f"Expected maps shaped [steps, words, height, width], got {tuple(maps.shape)}.")
    steps, words = maps.shape[:2]
    if len(word_labels) != words or len(step_labels) != steps:
        raise ValueError(f"Got {len(word_labels)} word labels and {len(step_labels)} step labels "
                         f"for maps with {words} words and {steps} steps; give one label each.")
    if cell_size < 16:
        raise ValueError(f"cell_size {cell_size} is too small to read; use 16 or more.")

    layout = GridLayout(steps, words, cell_size)
    canvas = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = label_font(layout.font_size)
    padding = layout.font_size // 2

    for step, text in enumerate(step_labels):
        x, _ = layout.cell_origin(step, 0)
        draw_text(draw, (x + cell_size / 2, layout.header_height / 2),
                  fit_text(text, font, cell_size), font, TEXT_COLOUR, "mm")
    for word, text in enumerate(word_labels):
        _, y = layout.cell_origin(0, word)
        draw_text(draw, (padding, y + cell_size / 2),
                  fit_text(text, font, layout.label_width - 2 * padding), font, TEXT_COLOUR, "lm")

    cells = upsample_maps(maps, cell_size, cell_size)
    absent_colour = torch.tensor(ABSENT_FILL, dtype=torch.float32, device=cells.device) / 255.0
    for step in range(steps):
        colours = apply_colormap(cells[step], colormap)
        colours = torch.where(torch.isnan(colours), absent_colour, colours)
        for word in range(words):
            x, y = layout.cell_origin(step, word)
            if step in not_evaluated:
                canvas.paste(not_evaluated_cell(cell_size), (x, y))
            elif torch.isnan(cells[step, word]).all():
                canvas.paste(absent_cell(cell_size), (x, y))
            else:
                canvas.paste(Image.fromarray(to_uint8(colours[word])), (x, y))
    return pil_to_image(canvas)


def absent_cell(size: int) -> Image.Image:
    """Grey with a slash from the bottom-left corner to the top-right, drawn inside the cell."""
    cell = Image.new("RGB", (size, size), ABSENT_FILL)
    ImageDraw.Draw(cell).line((0, size - 1, size - 1, 0), fill=ABSENT_SLASH, width=2)
    return cell
