"""The delayed effect on the toy model: when each word's cross-attention rises, per branch.

    .venv/bin/python -m devtools.toy_model.word_timing [--seeds 0,1] [--batch 16] [--steps 12]
        [--checkpoint your-sd15.safetensors --size 512 --prompt "..." --negative "..." --words "..."]

Records the words of "portrait photo of a man with glasses" (positive branch) and of the
negative "glasses" (unconditional branch, from step 0) with Record Attention Maps, samples with
KSampler (Delayed Negative) from step 0 (the stock behaviour), and prints, for each word, the
first step at which its mean attention over the image (averaged over the batch) reaches half of
its peak, the step of the peak, and the whole curve. The paper reports that positive words act
from the first steps and negative words later.
"""

import argparse
from devtools.host import comfy_env

# isort: split
import numpy as np
import torch

from devtools.toy_model.experiments import TOY_CHECKPOINT, load_toy_checkpoint

POSITIVE = "portrait photo of a man with glasses"
NEGATIVE = "glasses"
WORDS = "portrait, man, glasses"


def half_peak_step(strength: np.ndarray) -> int:
    """First step at which `strength` [steps] reaches half of its highest value."""
    return int(np.flatnonzero(strength >= 0.5 * np.nanmax(strength))[0])


def word_timing(checkpoint, seed: int, batch: int, steps: int, size: int = 64, prompt: str = POSITIVE,
                negative_prompt: str = NEGATIVE, words: str = WORDS) -> dict[str, tuple[int, int, np.ndarray]]:
    from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
    from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler

    import nodes

    model, clip, _ = checkpoint
    patched, recording = RecordAttentionMaps.execute(model, clip, prompt, negative_prompt, words, negative_prompt,
                                                     "all").result
    positive = nodes.CLIPTextEncode().encode(clip, prompt)[0]
    negative = nodes.CLIPTextEncode().encode(clip, negative_prompt)[0]
    latent = nodes.EmptyLatentImage().generate(size, size, batch)[0]
    samples = DelayedNegativeKSampler.execute(patched, seed, steps, 5.0, "euler", "normal", positive, negative,
                                              latent, 1.0, 0, -1, "step", "empty prompt", clip, None).result[0]
    maps = CollectAttentionMaps.execute(recording, samples).result[0]
    strength = maps.strength().mean(dim=-1).numpy()  # [steps, tracks]
    timing = {}
    for index, track in enumerate(maps.tracks):
        if track.prompt == "empty":
            continue
        curve = strength[:, index]
        timing[f"{track.word} ({track.branch})"] = (half_peak_step(curve), int(np.nanargmax(curve)), curve)
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--checkpoint", default=str(TOY_CHECKPOINT),
                        help="any SD1.x/SD2.x/SDXL checkpoint file (default: the toy portraits model)")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (64 for the toy, 512 for SD1.5)")
    parser.add_argument("--prompt", default=POSITIVE)
    parser.add_argument("--negative", default=NEGATIVE)
    parser.add_argument("--words", default=WORDS, help="the positive prompt's words to follow, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1 if args.checkpoint == str(TOY_CHECKPOINT) else torch.get_num_threads())
    comfy_env.import_pack()
    checkpoint = load_toy_checkpoint(args.checkpoint)
    print(f"prompt '{args.prompt}', negative '{args.negative}' from step 0; {args.steps} euler steps, cfg 5; "
          "per seed and word: the step its attention reaches half its peak, the peak's step, the attention per step")
    for seed in (int(s) for s in args.seeds.split(",")):
        for word, (half, peak, curve) in word_timing(checkpoint, seed, args.batch, args.steps, args.size, args.prompt,
                                                     args.negative, args.words).items():
            print(f"seed {seed} | {word}: half at step {half}, peak at step {peak} | "
                  + " ".join(f"{value:.3f}" for value in curve))


if __name__ == "__main__":
    main()
