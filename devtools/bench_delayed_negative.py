"""Speed of KSampler (Delayed Negative) against the stock KSampler (issue 2, "Speed").

Both sample the generated SD1.5-architecture checkpoint with the same seed and settings, in
one process, alternately (A, B, A, B, ...) after one warm-up run of each, so that drifts of a
shared machine hit both sides alike; the figures are medians of wall time.

- Empty prompt before the switch: the same number of model evaluations as the stock node,
  so the ratio should be about 1 (goal <= 1.01).
- No guidance before the switch: the unconditional evaluation of the first `negative_start`
  steps is skipped; for a sampler with one evaluation per step the ideal ratio is
  1 - negative_start / (2 * steps).
"""

import statistics
import time
from pathlib import Path

import folder_paths
import nodes

from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler

CHECKPOINT = Path(__file__).resolve().parent.parent / ".models" / "checkpoints" / "delayed-negative-test-sd15.safetensors"
SEED, CFG, SAMPLER, SCHEDULER = 42, 8.0, "euler", "normal"
NEGATIVE_START = 5


def median_times(first, second, repeats: int) -> tuple[float, float]:
    """Median wall times of two callables run alternately, after one untimed warm-up run of each."""
    times = ([], [])
    for run_index in range(repeats + 1):
        for sample, samples_times in zip((first, second), times):
            began = time.perf_counter()
            sample()
            if run_index > 0:
                samples_times.append(time.perf_counter() - began)
    return statistics.median(times[0]), statistics.median(times[1])


def load_checkpoint():
    if not CHECKPOINT.is_file():
        raise SystemExit(f"{CHECKPOINT} is missing: `make setup` generates it.")
    folder_paths.add_model_folder_path("checkpoints", str(CHECKPOINT.parent))
    return nodes.CheckpointLoaderSimple().load_checkpoint(CHECKPOINT.name)[:2]


def run(options) -> list[str]:
    model, clip = load_checkpoint()
    positive = nodes.CLIPTextEncode().encode(clip, "portrait photo of a man")[0]
    negative = nodes.CLIPTextEncode().encode(clip, "mustache")[0]
    latent = nodes.EmptyLatentImage().generate(options.size, options.size, 1)[0]
    steps = options.steps

    def stock():
        nodes.KSampler().sample(model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent)

    def delayed(before_negative):
        # clip: the node encodes the empty prompt once per CLIP (the warm-up run pays it).
        return lambda: DelayedNegativeKSampler.execute(
            model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent, 1.0,
            NEGATIVE_START, -1.0, "step", before_negative, clip, None)

    ideal = 1 - NEGATIVE_START / (2 * steps)
    lines = [f"KSampler (Delayed Negative) / stock KSampler: {SAMPLER}, {SCHEDULER}, {steps} steps, "
             f"negative from step {NEGATIVE_START}, cfg {CFG:g}, {options.size}x{options.size} image, "
             f"medians of {options.repeats} alternating runs"]
    for label, before_negative, target in [
            ("empty prompt before", "empty prompt", "goal <= 1.01"),
            ("no guidance before ", "no guidance", f"ideal 1 - k/(2N) = {ideal:.3f}")]:
        ours, theirs = median_times(delayed(before_negative), stock, options.repeats)
        lines.append(f"  {label}: ratio {ours / theirs:.3f} ({ours:.3f} s / {theirs:.3f} s)  {target}")
    return lines
