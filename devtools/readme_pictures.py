"""Make the README's pictures from a real run of the pack's nodes on the generated checkpoint.

    .venv/bin/python devtools/readme_pictures.py        # writes docs/attention_chart.png and docs/attention_grid.png

The checkpoint has random weights, so the maps show the machinery (branches apart, the
negative appearing at its start step), not what a trained model attends to.
"""

import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_env  # noqa: E402  (ComfyUI on sys.path, --cpu without a GPU)

comfy_env.import_pack()
import folder_paths  # noqa: E402
import nodes  # noqa: E402

from delayed_negative.nodes.attention_maps import (AttentionChart, AttentionGrid, CollectAttentionMaps,  # noqa: E402
                                                   RecordAttentionMaps)
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler  # noqa: E402
from delayed_negative.render.convert import to_uint8  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
POSITIVE, NEGATIVE = "portrait photo of a man", "mustache"


def save(image, name):
    Image.fromarray(to_uint8(image[0])).save(DOCS / name)


if __name__ == "__main__":
    checkpoints = Path(__file__).resolve().parent.parent / ".models" / "checkpoints"
    folder_paths.add_model_folder_path("checkpoints", str(checkpoints))
    model, clip, _vae = nodes.CheckpointLoaderSimple().load_checkpoint("delayed-negative-test-sd15.safetensors")
    positive = nodes.CLIPTextEncode().encode(clip, POSITIVE)[0]
    negative = nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0]
    recording_model, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "photo, man", "mustache",
                                                             "all").result
    latent = DelayedNegativeKSampler.execute(recording_model, 42, 20, 7.5, "euler", "normal", positive, negative,
                                             nodes.EmptyLatentImage().generate(128, 128, 1)[0], 1.0, 5, -1.0, "step",
                                             "empty prompt", clip, None).result[0]
    maps = CollectAttentionMaps.execute(recording, latent).result[0]
    save(AttentionChart.execute(maps, "", 0, -1).result[0], "attention_chart.png")
    save(AttentionGrid.execute(maps, "", "0, 2, 4, 5, 6, 10, 19", 0, "viridis", "per word over steps", 64).result[0],
         "attention_grid.png")
