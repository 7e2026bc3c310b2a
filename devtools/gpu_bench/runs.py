"""What the GPU run times on each model: whole sampling runs of the stock KSampler and of the pack.

Run kinds, each against the stock run with the same model evaluations or the same cfg:
- `stock`: ComfyUI's KSampler at the model's cfg (SDXL 7, Wan 5; Flux dev at cfg 1, as it is used);
- `delayed_negative`: the pack's sampler at the same cfg, the negative from half-way, the empty
  prompt before it: the same evaluations as `stock`, so the ideal ratio is 1;
- `recording`: the stock KSampler on the model from Record Attention Maps' hooks (two positive
  words, one negative word, the empty prompt's <end>; every text-attention layer); goal <= 1.10;
- `nag`: the pack's sampler at cfg 1 with NAG from half-way: one branch before the start, two from
  it, so against the stock KSampler at cfg 1 the ideal ratio is (k + 2 (N - k)) / N;
- `stock_cfg1`: the stock KSampler at cfg 1, `nag`'s reference where the model's cfg is not 1.

Every kind first runs once with WARMUP_STEPS steps (untimed in the figures: first calls pay for
kernels and allocations), then the kinds run in turn, round after round, so that drifts hit them
alike; the figures are medians. A run whose expected time (its last run scaled to the steps) would
pass the model's deadline is skipped and noted.
"""

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import comfy.model_management
import nodes
import torch

from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.samplers.ksampler import delayed_negative_ksampler
from delayed_negative.samplers.nag import NAGSettings
from delayed_negative.samplers.negative_window import NegativeTiming
from devtools.gpu_bench.models import ModelSpec

SEED, SAMPLER = 42, "euler"
WARMUP_STEPS = 2  # one step before the negative's start and one from it: both batch sizes are met
# Record Attention Maps' columns as devtools/bench/bench_dit.py sets them: two positive words, a negative one, <end>.
COLUMNS = {"positive": [("first", [1, 2]), ("second", [5])], "negative": [("blur", [2, 3])], "empty": [("<end>", [1])]}


@dataclass
class Kind:
    """One run kind: how to sample `steps` steps, and what its time is measured against."""

    name: str
    sample: Callable[[int], object]
    against: str | None = None
    ideal: float | None = None  # the ratio if the time were only the model evaluations
    goal: float | None = None  # the most the ratio should be
    times: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    estimate_s: float | None = None
    error: str | None = None


def negative_start(steps: int) -> int:
    return steps // 2


def kinds(spec: ModelSpec, model) -> list[Kind]:
    """The run kinds of one model, with random prompts of its text widths (seeded: the same every run)."""
    generator = torch.Generator().manual_seed(0)
    positive, negative, empty = (spec.conditioning(generator) for _ in range(3))
    latent = spec.empty_latent()
    recording_model = record_attention(model, AttentionRecording(COLUMNS, empty[0][0]))

    def stock(cfg, with_model=model):
        return lambda steps: nodes.KSampler().sample(with_model, SEED, steps, cfg, SAMPLER, spec.scheduler, positive,
                                                     negative, latent)

    def delayed(steps):
        return delayed_negative_ksampler(model, SEED, steps, spec.cfg, SAMPLER, spec.scheduler, positive, negative,
                                         latent, NegativeTiming(negative_start(steps)), empty)

    def nag(steps):
        return delayed_negative_ksampler(model, SEED, steps, 1.0, SAMPLER, spec.scheduler, positive, negative, latent,
                                         NegativeTiming(negative_start(steps)), None, nag=NAGSettings())

    steps, start = spec.steps, negative_start(spec.steps)
    nag_reference = "stock" if spec.cfg == 1.0 else "stock_cfg1"
    found = [Kind("stock", stock(spec.cfg)),
             Kind("delayed_negative", delayed, against="stock", ideal=1.0),
             Kind("recording", stock(spec.cfg, recording_model), against="stock", goal=1.10),
             Kind("nag", nag, against=nag_reference, ideal=(start + 2 * (steps - start)) / steps)]
    if spec.cfg != 1.0:
        found.append(Kind("stock_cfg1", stock(1.0)))
    return found


def timed(kind: Kind, steps: int, device: torch.device) -> float:
    """Seconds of one run of `kind` (the device's work included); its peak memory noted on a GPU."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    kind.sample(steps)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - began
    if cuda:
        kind.peak_bytes = max(kind.peak_bytes or 0, torch.cuda.max_memory_allocated(device))
    kind.estimate_s = seconds
    return seconds


def run_kinds(found: list[Kind], steps: int, repeats: int, deadline: float, device: torch.device) -> list[str]:
    """Warm every kind up, then time `repeats` rounds of them in turn before `deadline`; returns what was skipped."""
    skipped = []

    def attempt(kind: Kind, run_steps: int, what: str) -> float | None:
        if kind.error is not None:
            return None
        expected = (kind.estimate_s or 0.0) * run_steps / (steps if kind.times else WARMUP_STEPS)
        left = deadline - time.perf_counter()
        if expected > left:
            skipped.append(f"{kind.name}: {what} skipped (expected {expected:.1f} s, {max(left, 0):.1f} s left "
                           "of this model's share of the budget)")
            return None
        try:
            return timed(kind, run_steps, device)
        except Exception as error:  # noqa: BLE001  (one kind failing must not lose the others' figures)
            kind.error = f"{type(error).__name__}: {error}"
            skipped.append(f"{kind.name}: failed in the {what}: {kind.error}")
            return None

    for kind in found:
        attempt(kind, WARMUP_STEPS, "warm-up")
    for round_index in range(repeats):
        for kind in found:
            seconds = attempt(kind, steps, f"timed run {round_index + 1}")
            if seconds is not None:
                kind.times.append(seconds)
    return skipped


def summary(found: list[Kind], steps: int) -> dict:
    """Per kind: its times, median, steps per second, peak memory, and its ratio against its reference."""
    medians = {kind.name: statistics.median(kind.times) for kind in found if kind.times}
    out = {}
    for kind in found:
        median = medians.get(kind.name)
        reference = medians.get(kind.against) if kind.against else None
        out[kind.name] = {
            "runs": len(kind.times), "times_s": [round(seconds, 4) for seconds in kind.times],
            "median_s": median, "it_per_s": steps / median if median else None,
            "peak_memory_bytes": kind.peak_bytes, "against": kind.against,
            "ratio": median / reference if median and reference else None,
            "ideal": kind.ideal, "goal": kind.goal, "error": kind.error}
    return out


def release_memory() -> None:
    """Let go of the last model before the next is built (ComfyUI holds loaded models by weak references)."""
    comfy.model_management.unload_all_models()
    gc.collect()
    comfy.model_management.soft_empty_cache()
