"""The README's picture of the toy model: the same 8 seeds with the negative "glasses" from several steps.

    .venv/bin/python -m devtools.toy_model.picture docs/toy_model_glasses.png

Rows: no negative, then the negative from step 0 (the stock KSampler), 2, 4 and 6 of 12
(the pack's DelayedNegativeKSampler, empty prompt before). Seed 0, batch 8, euler, cfg 5.
"""

import sys
from devtools.host import comfy_env

# isort: split
import numpy as np
import torch
from PIL import Image, ImageDraw

from devtools.toy_model.experiments import Run, load_toy_checkpoint, sample

PROMPT = "portrait photo of a man with glasses"
ROWS = (("no negative", None, ""), ("from step 0", None, "glasses"), ("from step 2", 2, "glasses"),
        ("from step 4", 4, "glasses"), ("from step 6", 6, "glasses"))
SCALE, LABEL_WIDTH = 2, 110


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    comfy_env.import_pack()
    checkpoint = load_toy_checkpoint()
    rows = []
    for label, start, negative in ROWS:
        images = sample(checkpoint, Run(PROMPT, negative, start, seed=0, batch=8, steps=12))
        strip = (np.concatenate(list(images), axis=1) * 255).round().astype(np.uint8)
        picture = Image.fromarray(strip).resize((strip.shape[1] * SCALE, strip.shape[0] * SCALE), Image.NEAREST)
        row = Image.new("RGB", (picture.width + LABEL_WIDTH, picture.height), "white")
        row.paste(picture, (LABEL_WIDTH, 0))
        ImageDraw.Draw(row).text((6, picture.height // 2 - 6), label, fill="black")
        rows.append(row)
    grid = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    for index, row in enumerate(rows):
        grid.paste(row, (0, index * row.height))
    grid.save(sys.argv[1])
    print(f"wrote {sys.argv[1]}")


if __name__ == "__main__":
    main()
