"""Speed of KSampler (Delayed Negative) against the stock KSampler (issue 2, "Speed").

Both sides sample the generated SD1.5-architecture checkpoint with the same seed and settings,
in one process, alternately (A, B, A, B, ...) after one warm-up run of each, so that drifts of
a shared machine hit both alike; the figures are medians of wall time.
The negative starts at a quarter of the steps (step 5 of 20).

- Empty prompt before the switch: the same number of model evaluations as the stock node,
  so the ratio should be about 1 (goal <= 1.01).
- No guidance before the switch: the unconditional evaluation of the steps before the switch
  is skipped; for a sampler with one evaluation per step the ideal ratio is
  1 - start / (2 * steps). It is reached only where an evaluation's cost grows with its batch
  (cond and uncond are batched together); a small latent on a CPU is bound by reading the
  weights instead, and the ratio stays nearer 1.
"""

import statistics
import time
from pathlib import Path

import folder_paths
import nodes

from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler

PACK_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = PACK_ROOT / ".models" / "checkpoints" / "delayed-negative-test-sd15.safetensors"
SEED, CFG, SAMPLER, SCHEDULER = 42, 8.0, "euler", "normal"


def median_times(first, second, repeats: int) -> tuple[float, float]:
    """Median wall times of two callables run alternately, after one untimed warm-up run of each."""
    times = ([], [])
    for round_index in range(repeats + 1):
        for sample, sample_times in zip((first, second), times):
            began = time.perf_counter()
            sample()
            if round_index > 0:
                sample_times.append(time.perf_counter() - began)
    return statistics.median(times[0]), statistics.median(times[1])


def load_checkpoint():
    if not CHECKPOINT.is_file():
        raise SystemExit(f"{CHECKPOINT} is missing: `make setup` generates it.")
    folder_paths.add_model_folder_path("checkpoints", str(CHECKPOINT.parent))
    return nodes.CheckpointLoaderSimple().load_checkpoint(CHECKPOINT.name)[:2]


def bench_inputs(options):
    """(model, clip, positive, negative, latent): the paper's prompts on the generated checkpoint."""
    model, clip = load_checkpoint()
    positive = nodes.CLIPTextEncode().encode(clip, "portrait photo of a man")[0]
    negative = nodes.CLIPTextEncode().encode(clip, "mustache")[0]
    latent = nodes.EmptyLatentImage().generate(options.size, options.size, 1)[0]
    return model, clip, positive, negative, latent


def run(options) -> list[str]:
    model, clip, positive, negative, latent = bench_inputs(options)
    steps = options.steps
    negative_start = steps // 4

    def stock():
        nodes.KSampler().sample(model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent)

    def delayed(before_negative):
        # clip: the node encodes the empty prompt once per CLIP (the warm-up run pays it).
        return lambda: DelayedNegativeKSampler.execute(
            model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent, 1.0,
            negative_start, -1.0, "step", before_negative, clip, None)

    ideal = 1 - negative_start / (2 * steps)
    lines = [f"KSampler (Delayed Negative) / stock KSampler: {SAMPLER}, {SCHEDULER}, {steps} steps, negative "
             f"from step {negative_start}, cfg {CFG:g}, {options.size}x{options.size} image, medians of "
             f"{options.repeats} alternating runs"]
    for label, before_negative, target in [
            ("empty prompt before the switch", "empty prompt", "goal <= 1.01"),
            ("no guidance before the switch ", "no guidance", f"ideal 1 - k/(2N) = {ideal:.3f}")]:
        ours, theirs = median_times(delayed(before_negative), stock, options.repeats)
        lines.append(f"  {label}: ratio {ours / theirs:.3f} ({ours:.3f} s / {theirs:.3f} s)  {target}")
    return lines
