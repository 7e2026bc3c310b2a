"""Cost of NAG at cfg 1 (the delayed negative's `nag` input) on the UNet and on each DiT family.

Each model is small and in memory: the tiny SD1.5 UNet of the tests (devtools/models/tiny_models.py)
at the bench's image size, and each DiT family of devtools/models/tiny_dit_models.py scaled as
bench_dit scales it (its latent's channels and frames, the bench's image size / 8), random
conditioning of the model's text width, cfg 1, default NAG settings. Measured:

- KSampler (Delayed Negative) with NAG from step k = N/2 against NAG from step 0: before the
  start the positive is evaluated alone (one branch), from it the positive and the negative in
  one batch (two branches), so the ideal ratio is (k + 2(N - k)) / 2N; goal: within 2 % of it.
  On a CPU at these sizes a batch of two costs less than twice a batch of one, and the ratio
  stays above the ideal.
- NAG from step 0 against ComfyUI's own NAGuidance on the stock KSampler at cfg 1 (ComfyUI 0.33
  on; the same batch of two at every step; goal <= 1.01). NAGuidance guides the attention output
  where the model calls attn1_output_patch (in 0.33: a UNet's self-attention, where this pack
  guides the cross-attention, and the Flux-architecture families: the same tensor as this pack);
  elsewhere it only asks for the batch of two, and the ratio is the price of guiding at all.
  Each line says which (from one one-step run that counts NAGuidance's calls).
A family that NAG does not cover yet is listed as such.

Medians of interleaved runs in one process, after one untimed warm-up run of each side, of wall
time (as the other benchmarks) and of the process's CPU time (steadier on a shared machine). On a
2-core machine that other jobs load, two torch threads spin against each other and the runs take
ten times as long: run it with one.

    OMP_NUM_THREADS=1 .venv/bin/python -m devtools.bench.bench --only bench_nag --repeats 3
"""

import statistics
import time

import nodes
import torch

from devtools.bench.bench_dit import SCALE
from devtools.models.tiny_dit_models import FAMILIES
from devtools.models.tiny_models import tiny_sd15
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.samplers.nag import NAGSettings
from delayed_negative.samplers.nag_model import nag_covers

try:
    from comfy_extras.nodes_nag import NAGuidance  # ComfyUI 0.33 on
except ImportError:
    NAGuidance = None

SEED, SAMPLER = 42, "euler"
SD15_TEXT = (77, 768)  # CLIP-L's tokens and width: what the SD1.5 UNet's cross-attention reads


def interleaved_medians(samples, repeats: int) -> list[tuple[float, float]]:
    """(wall, CPU) median times of callables run in turn (A, B, C, A, B, C, ...) after one untimed
    run of each. The process's CPU time leaves out the time other jobs of a shared machine hold its
    cores, which on a loaded 2-core machine moves the wall times by more than NAG costs."""
    times = [[] for _ in samples]
    for round_index in range(repeats + 1):
        for sample, sample_times in zip(samples, times):
            began, began_cpu = time.perf_counter(), time.process_time()
            sample()
            if round_index > 0:
                sample_times.append((time.perf_counter() - began, time.process_time() - began_cpu))
    return [(statistics.median(wall for wall, _ in sample_times), statistics.median(cpu for _, cpu in sample_times))
            for sample_times in times]


def ratio(first: tuple[float, float], second: tuple[float, float]) -> str:
    """The wall ratio of two (wall, CPU) medians, their wall times, and their CPU time ratio."""
    return f"{first[0] / second[0]:.3f} ({first[0]:.3f} s / {second[0]:.3f} s; CPU time {first[1] / second[1]:.3f})"


def unet_inputs(size: int):
    """(name, model, (positive, negative), latent, scheduler) for the tiny SD1.5 UNet."""
    generator = torch.Generator().manual_seed(0)
    positive, negative = ([[torch.randn(1, *SD15_TEXT, generator=generator), {}]] for _ in range(2))
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}
    return "SD1.5 (tiny UNet)", tiny_sd15(), (positive, negative), latent, "normal"


def dit_inputs(spec, size: int, scale: int):
    """The same for a DiT family: its model at `scale`, its latent's channels and frames at `size` / 8
    (as bench_dit builds them)."""
    generator = torch.Generator().manual_seed(0)
    conds = tuple(spec.conditioning(generator) for _ in range(2))
    latent = {"samples": torch.zeros(*spec.latent_shape[:-2], size // 8, size // 8)}
    return spec.name, spec.build(scale=scale), conds, latent, "simple"


def models(size: int, scale: int):
    """The inputs of each model in turn, built one at a time."""
    yield unet_inputs(size)
    for spec in FAMILIES.values():
        yield dit_inputs(spec, size, scale)


def parameters(model) -> str:
    count = sum(parameter.numel() for parameter in model.get_model_object("diffusion_model").parameters())
    return f"{count / 1e6:.2f} M parameters"


def core_nag_guides(core_model, positive, negative, latent, scheduler) -> bool:
    """Whether NAGuidance's attention patch is called, and with both branches, in a one-step run."""
    counted = core_model.clone()
    options = counted.model_options["transformer_options"]["patches"]
    calls = []

    def counting(patch):
        def patched(out, extra_options):
            calls.append(set(extra_options.get("cond_or_uncond") or []))
            return patch(out, extra_options)
        return patched

    options["attn1_output_patch"] = [counting(patch) for patch in options["attn1_output_patch"]]
    nodes.KSampler().sample(counted, SEED, 1, 1.0, SAMPLER, scheduler, positive, negative, latent)
    return any(branches == {0, 1} for branches in calls)


def family_line(name, model, conds, latent, scheduler, options) -> str:
    steps, start = options.steps, options.steps // 2
    positive, negative = conds
    settings = NAGSettings()

    def ours(negative_start):
        return lambda: DelayedNegativeKSampler.execute(
            model, SEED, steps, 1.0, SAMPLER, scheduler, positive, negative, latent, 1.0, negative_start, -1.0,
            "step", "no guidance", None, None, None, None, settings)

    sides = [ours(start), ours(0)]
    if NAGuidance is not None:
        core_model = NAGuidance.execute(model, settings.scale, settings.alpha, settings.tau)[0]
        sides.append(lambda: nodes.KSampler().sample(core_model, SEED, steps, 1.0, SAMPLER, scheduler, positive,
                                                     negative, latent))
    times = interleaved_medians(sides, options.repeats)
    ideal = (start + 2 * (steps - start)) / (2 * steps)
    line = (f"  {name} ({parameters(model)}): NAG from step {start} / from step 0 {ratio(times[0], times[1])} "
            f"goal {ideal:.3f} +- 2 %")
    if NAGuidance is None:
        return line
    acts = "guides here" if core_nag_guides(core_model, positive, negative, latent, scheduler) else \
        "does not guide this model, only batches the two branches"
    return f"{line}; NAG from step 0 / NAGuidance {ratio(times[1], times[2])} goal <= 1.01 (NAGuidance {acts})"


def run(options, scale: int = SCALE) -> list[str]:
    """The lines to print; `scale` sizes the DiTs (the tests' own models at 1)."""
    lines = [f"NAG at cfg 1 (scale 5, tau 1.5, alpha 0.5): {SAMPLER}, {options.steps} steps, {options.size}x"
             f"{options.size} image ({options.size // 8}x{options.size // 8} latent), random conditioning, DiTs "
             f"= small in-memory models x {scale}, medians of {options.repeats} interleaved runs"]
    if NAGuidance is None:
        lines.append("  this ComfyUI has no NAGuidance (comfy_extras/nodes_nag.py, ComfyUI 0.33 on): "
                     "NAG from step 0 / NAGuidance not measured")
    for inputs in models(options.size, scale):
        name, model = inputs[:2]
        if nag_covers(model):
            lines.append(family_line(*inputs, options))
        else:  # a family the tests build before NAG maps its attention
            lines.append(f"  {name} ({parameters(model)}): not measured, NAG does not cover this model yet")
    return lines
