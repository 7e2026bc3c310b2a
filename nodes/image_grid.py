"""Label and Grid Images: put several images (e.g. a critical-step sweep) into one labelled grid.

ComfyUI's own image nodes can batch or stitch images but cannot write a caption, and a sweep
is only useful if each picture says which negative_start made it.
"""

from comfy_api.latest import io

from ..render.labelled_grid import labelled_grid
from .negative_inputs import CATEGORY

IMAGE_INPUTS = 8


def parse_labels(labels: str) -> list[str]:
    """'step 0, step 3, step 6' → ['step 0', 'step 3', 'step 6']; empty → []."""
    return [label.strip() for label in labels.split(",")] if labels.strip() else []


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
