"""Several pictures in one grid, each under its caption (a critical-step sweep's images, each
saying which negative_start made it): ComfyUI's own image nodes batch or stitch but cannot caption."""

from PIL import Image, ImageDraw
from torch import Tensor

from .convert import pil_to_image, to_uint8
from .text import draw_text, fit_text, label_font, text_height

BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (30, 30, 30)
GAP = 4


def labelled_grid(images: list[Tensor], labels: list[str], columns: int) -> Tensor:
    """Draw each IMAGE [1, H, W, 3] in a cell under its label; returns one IMAGE [1, H', W', 3].

    Cells take the size of the first picture; a picture of another size is fitted into its cell
    keeping its proportions. `columns` 0 puts every picture in one row.
    """
    if not images:
        raise ValueError("No image is connected: connect image_1, image_2, ... to the pictures to put in the grid.")
    if len(labels) > len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} pictures: remove "
                         f"{len(labels) - len(images)} label(s), or connect more images.")
    labels = labels + [""] * (len(images) - len(labels))
    columns = len(images) if columns <= 0 else min(columns, len(images))
    rows = -(-len(images) // columns)
    cell_width, cell_height = images[0].shape[2], images[0].shape[1]
    font = label_font(max(12, cell_width // 14))
    label_height = text_height(font) + 8 if any(labels) else 0

    canvas = Image.new("RGB", (columns * cell_width + (columns + 1) * GAP,
                               rows * (label_height + cell_height) + (rows + 1) * GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for index, (image, label) in enumerate(zip(images, labels)):
        x = GAP + (index % columns) * (cell_width + GAP)
        y = GAP + (index // columns) * (label_height + cell_height + GAP)
        if label:
            draw_text(draw, (x + cell_width / 2, y + label_height / 2), fit_text(label, font, cell_width - 4),
                      font, TEXT_COLOUR, "mm")
        picture = Image.fromarray(to_uint8(image[0]))
        if picture.size != (cell_width, cell_height):
            picture.thumbnail((cell_width, cell_height), Image.LANCZOS)
        canvas.paste(picture, (x + (cell_width - picture.width) // 2,
                               y + label_height + (cell_height - picture.height) // 2))
    return pil_to_image(canvas)
