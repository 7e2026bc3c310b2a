"""Cost of the delayed negative and of recording attention maps on each DiT family (issue 8).

Each family's small in-memory model (devtools/tiny_dit_models.py: ComfyUI's own SD3 MMDiT,
Flux, Qwen-Image and Wan 2.1 classes) at 4 times the tests' blocks, heads and width, with a
latent of the bench's image size / 8 (Wan: 3 latent frames), random conditioning of the
family's text width:
- KSampler (Delayed Negative), negative from a third of the steps, against the stock KSampler
  with the same negative (the same number of model evaluations; goal <= 1.01);
- the stock KSampler on the model from Record Attention Maps' hooks (two positive words, one
  negative word, the empty prompt's <end>; every text-attention block, the exact joint share)
  against the plain model (goal <= 1.10).
Medians of alternating runs in one process. These models are tiny: the fixed costs per step and
per attention call weigh far more here than on a real model, where the attention is large.
"""

import nodes
import torch

from devtools.bench.bench_delayed_negative import median_times
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from devtools.models.tiny_dit_models import FAMILIES

SEED, CFG, SAMPLER, SCHEDULER = 42, 4.0, "euler", "simple"
SCALE = 4  # the small models x 4: 4-8 blocks of 4-8 heads, 256-512 wide
COLUMNS = {"positive": [("first", [1, 2]), ("second", [5])], "negative": [("blur", [2, 3])], "empty": [("<end>", [1])]}


def family_inputs(spec, size: int):
    generator = torch.Generator().manual_seed(0)
    prompts = [spec.conditioning(generator) for _ in range(3)]
    shape = (*spec.latent_shape[:-2], size // 8, size // 8)
    return spec.build(scale=SCALE), prompts, {"samples": torch.zeros(shape)}


def run(options) -> list[str]:
    lines = [f"DiT families (small in-memory models x {SCALE}): {SAMPLER}, {options.steps} steps, {options.size}x{options.size} "
             f"image ({options.size // 8}x{options.size // 8} latent), cfg {CFG}, medians of {options.repeats} "
             "alternating runs"]
    start = options.steps // 3
    for spec in FAMILIES.values():
        model, (positive, negative, empty), latent = family_inputs(spec, options.size)

        def delayed():
            DelayedNegativeKSampler.execute(model, SEED, options.steps, CFG, SAMPLER, SCHEDULER, positive, negative,
                                            latent, 1.0, start, -1.0, "step", "early conditioning", None, empty)

        def stock(with_model=model):
            return lambda: nodes.KSampler().sample(with_model, SEED, options.steps, CFG, SAMPLER, SCHEDULER, positive,
                                                   negative, latent)

        delayed_time, stock_time = median_times(delayed, stock(), options.repeats)
        recording_model = record_attention(model, AttentionRecording(COLUMNS, empty[0][0]))
        recorded_time, plain_time = median_times(stock(recording_model), stock(), options.repeats)
        lines += [f"  {spec.name}: delayed negative / stock KSampler {delayed_time / stock_time:.3f} "
                  f"({delayed_time:.3f} s / {stock_time:.3f} s) goal <= 1.01; recording / plain "
                  f"{recorded_time / plain_time:.3f} ({recorded_time:.3f} s / {plain_time:.3f} s) goal <= 1.10"]
    return lines
