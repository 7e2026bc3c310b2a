"""Label and Grid Images: put several images (e.g. a critical-step sweep) into one labelled grid.

ComfyUI's own image nodes can batch or stitch images but cannot write a caption, and a sweep
is only useful if each picture says which negative_start made it.
"""

from PIL import Image, ImageDraw
from torch import Tensor

from comfy_api.latest import io

from ..render.convert import pil_to_image, to_uint8
from ..render.text import draw_text, fit_text, label_font, text_height
from .negative_inputs import CATEGORY

IMAGE_INPUTS = 8
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (30, 30, 30)
GAP = 4


def parse_labels(labels: str) -> list[str]:
    """'step 0, step 3, step 6' → ['step 0', 'step 3', 'step 6']; empty → []."""
    return [label.strip() for label in labels.split(",")] if labels.strip() else []


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


class LabeledImageGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeLabeledImageGrid",
            display_name="Label and Grid Images",
            category=CATEGORY,
            description="Puts the connected images into one grid with a caption above each, e.g. the same seed "
                        "at several negative_start values, so you can pick the critical step by eye.",
            inputs=[
                io.String.Input("labels", default="",
                                tooltip="Comma-separated captions, one per picture in order (image_1 first; "
                                        "each image of a batch counts as one picture). Empty = no captions."),
                io.Int.Input("columns", default=0, min=0, max=64,
                             tooltip="Pictures per row; 0 = all in one row."),
                *[io.Image.Input(f"image_{number}", optional=True,
                                 tooltip=f"Picture {number} of the grid (a batch adds all its images). "
                                         "Unconnected inputs are skipped.")
                  for number in range(1, IMAGE_INPUTS + 1)],
            ],
            outputs=[io.Image.Output(tooltip="One image: the captioned pictures in a grid.")],
        )

    @classmethod
    def execute(cls, labels, columns, **images):
        pictures = [image[index:index + 1] for number in range(1, IMAGE_INPUTS + 1)
                    if (image := images.get(f"image_{number}")) is not None for index in range(image.shape[0])]
        return io.NodeOutput(labelled_grid(pictures, parse_labels(labels), columns))


NODES = [LabeledImageGrid]
