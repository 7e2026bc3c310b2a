"""Make the README's attention pictures from a real run of the pack's nodes on the toy portraits model.

    .venv/bin/python -m devtools.examples.readme_pictures        # writes docs/attention_chart.png and docs/attention_grid.png

The toy model (devtools/toy_model/, built by `make setup`) is trained on 64x64 drawn portraits:
its maps show what a model that has learnt faces and glasses attends to, not what SD1.5 does.
The run: "portrait photo of a man with glasses", the negative "glasses" from step 3 of 12
(KSampler (Delayed Negative), the empty prompt before), euler, cfg 5, seed 0, one 64x64 image:
the first image of example 07's delayed row.
"""

from pathlib import Path
from devtools.host import comfy_env  # noqa: E402  (ComfyUI on sys.path, --cpu without a GPU)

# isort: split
import torch  # noqa: E402
from PIL import Image  # noqa: E402

comfy_env.import_pack()
import nodes  # noqa: E402

from delayed_negative.nodes.attention_maps import (AttentionChart, AttentionGrid, CollectAttentionMaps,  # noqa: E402
                                                   RecordAttentionMaps)
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler  # noqa: E402
from delayed_negative.render.convert import to_uint8  # noqa: E402
from devtools.toy_model.experiments import load_toy_checkpoint  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"
POSITIVE, NEGATIVE = "portrait photo of a man with glasses", "glasses"
SEED, STEPS, CFG, NEGATIVE_START, SIZE = 0, 12, 5.0, 3, 64


def save(image, name):
    Image.fromarray(to_uint8(image[0])).save(DOCS / name)
    print(f"wrote docs/{name}")


if __name__ == "__main__":
    torch.set_num_threads(1)  # deterministic and fastest for one 64x64 image
    model, clip, _vae = load_toy_checkpoint()
    positive = nodes.CLIPTextEncode().encode(clip, POSITIVE)[0]
    negative = nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0]
    recording_model, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "man, glasses",
                                                             "glasses", "all").result
    latent = DelayedNegativeKSampler.execute(recording_model, SEED, STEPS, CFG, "euler", "normal", positive, negative,
                                             nodes.EmptyLatentImage().generate(SIZE, SIZE, 1)[0], 1.0,
                                             NEGATIVE_START, -1.0, "step", "empty prompt", clip, None).result[0]
    maps = CollectAttentionMaps.execute(recording, latent).result[0]
    save(AttentionChart.execute(maps, "", 0, -1).result[0], "attention_chart.png")
    save(AttentionGrid.execute(maps, "", "all", 0, "viridis", "per word over steps", 64).result[0],
         "attention_grid.png")
