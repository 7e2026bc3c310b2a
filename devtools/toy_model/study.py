"""`make study`: when does a negative prompt remove an object and keep the image, on the toy model?

    .venv/bin/python -m devtools.toy_model.study [--seeds 0,1] [--batch 16] [--steps 12]

For each probe (two objects, glasses and mustache, and one attribute, the red of a red hat) it
samples the same seeds with the negative from step 0 (the stock KSampler), from 1/6, 1/3 and
1/2 of the steps (the pack's DelayedNegativeKSampler, empty prompt before), and never, and
reports, against the run without a negative: how often the thing is gone (among images that
had it), how well the face kept its place (skin IoU), and the mean pixel change outside the
thing's region. It also counts reverse activation: with a positive prompt that does not ask for
the thing, how often the negative from step 0, or from the delayed start, makes it appear.
The toy model is tiny and trained for minutes: the numbers measure the pack's mechanism on a
model that has learnt something, not what Stable Diffusion 1.5 does.
"""

import argparse
import time
from dataclasses import dataclass
from devtools.host import comfy_env

# isort: split
import numpy as np
import torch

from devtools.toy_model.detect import colour_pixels, find_face
from devtools.toy_model.experiments import Run, compare, has_glasses, load_toy_checkpoint, sample
from devtools.toy_model.portraits import HAT_RGB, MUSTACHE


def has_mustache(images: np.ndarray) -> np.ndarray:
    found = []
    for image in images:
        face = find_face(image)
        if face is None:
            found.append(False)
            continue
        lower = colour_pixels(image, MUSTACHE)[face.centre_row: face.bottom + 1, face.left: face.right + 1]
        found.append(lower.sum() >= 12)
    return np.array(found)


def has_red_hat(images: np.ndarray) -> np.ndarray:
    return np.array([colour_pixels(image, HAT_RGB["red"], 0.25)[:40].sum() >= 40 for image in images])


@dataclass(frozen=True)
class Probe:
    name: str
    positive: str
    plain_positive: str  # the same prompt without the thing, for reverse activation
    negative: str
    present: object      # images -> bool per image


PROBES = (
    Probe("glasses (object)", "portrait photo of a man with glasses", "portrait photo of a man", "glasses",
          has_glasses),
    Probe("mustache (object)", "portrait photo of a man with a mustache", "portrait photo of a man", "mustache",
          has_mustache),
    Probe("red, of a red hat (attribute)", "portrait photo of a man with a red hat",
          "portrait photo of a man with a blue hat", "red", has_red_hat),
)


def sample_all(checkpoint, positive, negative, start, seeds, batch, steps):
    return np.concatenate([sample(checkpoint, Run(positive, negative, start, seed, batch, steps)) for seed in seeds])


def study(seeds: list[int], batch: int, steps: int) -> None:
    checkpoint = load_toy_checkpoint()
    starts = {"0 (stock)": None, "1/6": steps / 6, "1/3": steps / 3, "1/2": steps / 2}
    print(f"seeds {seeds} x batch {batch} = {len(seeds) * batch} images per cell; {steps} euler steps, cfg 5, "
          "64x64; starts are sampler steps (the pack's `step` unit, rounded up)\n")
    for probe in PROBES:
        reference = sample_all(checkpoint, probe.positive, "", None, seeds, batch, steps)
        had = probe.present(reference)
        print(f"## {probe.name}: '{probe.positive}', negative '{probe.negative}'")
        print(f"without a negative: present in {had.sum()}/{len(had)}")
        print("| negative from | removed (of those that had it) | face IoU (mean) | change outside (mean) |")
        print("|---|---|---|---|")
        for label, start in starts.items():
            images = sample_all(checkpoint, probe.positive, probe.negative, start, seeds, batch, steps)
            scored = compare(images, reference)
            still = probe.present(images)
            removed = (~still & had).sum()
            print(f"| {label} | {removed}/{had.sum()} ({removed / max(had.sum(), 1):.0%}) | "
                  f"{scored.face_overlap.mean():.2f} | {scored.change_outside.mean():.3f} |")
        print(f"| never | 0/{had.sum()} | 1.00 | 0.000 |")
        plain = sample_all(checkpoint, probe.plain_positive, "", None, seeds, batch, steps)
        base = probe.present(plain).sum()
        stock = probe.present(sample_all(checkpoint, probe.plain_positive, probe.negative, None, seeds, batch,
                                         steps)).sum()
        delayed = probe.present(sample_all(checkpoint, probe.plain_positive, probe.negative, steps / 3, seeds,
                                           batch, steps)).sum()
        print(f"\nreverse activation, '{probe.plain_positive}': present in {base} without a negative, "
              f"{stock} with '{probe.negative}' from step 0, {delayed} from 1/3\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds; each samples a batch")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    comfy_env.import_pack()
    started = time.time()
    study([int(s) for s in args.seeds.split(",")], args.batch, args.steps)
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
