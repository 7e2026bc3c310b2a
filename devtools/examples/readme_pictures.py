"""Make the README's attention pictures from a real run of the pack's nodes on the toy portraits model.

    .venv/bin/python -m devtools.examples.readme_pictures
        # writes docs/attention_chart.png, docs/attention_grid.png, docs/negative_influence_chart.png
        # and docs/explain_image_grid.png

The toy model (devtools/toy_model/, built by `make setup`) is trained on 64x64 drawn portraits:
its maps show what a model that has learnt faces and glasses attends to, not what SD1.5 does.
The run: "portrait photo of a man with glasses", the negative "glasses" from step 3 of 12
(KSampler (Delayed Negative), the empty prompt before), euler, cfg 5, seed 0, one 64x64 image:
the first image of example 07's delayed row. The same run recorded with the negative's influence
(only "man" and the negative's "glasses") gives the chart of where the negative acted. Explain
Image on the drawn portrait of example 13 (example_workflows/toy_portrait_glasses.png, as Load
Image gives it), 10 normal steps, all explained, seed 0, cfg 5, gives the explained image's grid.
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
from delayed_negative.nodes.explain_image import ExplainImage  # noqa: E402
from delayed_negative.render.convert import pil_to_image, to_uint8  # noqa: E402
from devtools.toy_model.experiments import load_toy_checkpoint  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"
PORTRAIT = DOCS.parent / "example_workflows" / "toy_portrait_glasses.png"
POSITIVE, NEGATIVE = "portrait photo of a man with glasses", "glasses"
SEED, STEPS, CFG, NEGATIVE_START, SIZE = 0, 12, 5.0, 3, 64


def save(image, name):
    Image.fromarray(to_uint8(image[0])).save(DOCS / name)
    print(f"wrote docs/{name}")


def recorded_run(model, clip, positive_words: str, negative_influence: bool = False):
    """The maps of the run above, recording `positive_words` and the negative's "glasses"."""
    positive = nodes.CLIPTextEncode().encode(clip, POSITIVE)[0]
    negative = nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0]
    recording_model, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, positive_words,
                                                             "glasses", "all", negative_influence).result
    latent = DelayedNegativeKSampler.execute(recording_model, SEED, STEPS, CFG, "euler", "normal", positive, negative,
                                             nodes.EmptyLatentImage().generate(SIZE, SIZE, 1)[0], 1.0,
                                             NEGATIVE_START, -1.0, "step", "empty prompt", clip, None).result[0]
    return CollectAttentionMaps.execute(recording, latent).result[0]


def explained_portrait(model, clip, vae):
    """Explain Image's maps of the drawn portrait, every step of 10, "man" and "glasses" recorded."""
    positive = nodes.CLIPTextEncode().encode(clip, POSITIVE)[0]
    negative = nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0]
    recording_model, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "man, glasses",
                                                             "glasses", "all").result
    return ExplainImage.execute(recording_model, recording, vae, pil_to_image(Image.open(PORTRAIT)), positive,
                                negative, 10, "normal", "all", SEED, CFG).result[0]


if __name__ == "__main__":
    torch.set_num_threads(1)  # deterministic and fastest for one 64x64 image
    model, clip, vae = load_toy_checkpoint()
    maps = recorded_run(model, clip, "man, glasses")
    save(AttentionChart.execute(maps, "", 0, -1).result[0], "attention_chart.png")
    save(AttentionGrid.execute(maps, "", "all", 0, "viridis", "per word over steps", 64).result[0],
         "attention_grid.png")
    influence = recorded_run(model, clip, "man", negative_influence=True)
    save(AttentionChart.execute(influence, "", 0, -1).result[0], "negative_influence_chart.png")
    share = influence.influence_share[:, 0]
    print("negative influence per step (mean over the image, latent units):",
          [round(value, 3) for value in influence.strength()[:, -1, 0].tolist()])
    print("its share of the guidance:", [round(value, 3) for value in share.tolist()])
    explained = explained_portrait(model, clip, vae)
    save(AttentionGrid.execute(explained, "man, glasses", "all", 0, "viridis", "per word over steps", 64).result[0],
         "explain_image_grid.png")
