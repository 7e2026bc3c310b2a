"""Cost of learning a sampler's steps (clock/dry_run.py) against the sampling it serves.

Before every run the delayed-negative guider (and the attention recorder) runs the sampler once
over the same sigmas with a stand-in model. Its cost is the sampler's own arithmetic on the
latent, with no model evaluation; here it is timed alone (median of repeated dry runs) and
divided by the median of a stock KSampler run with the same settings.
"""

import statistics
import time

import comfy.samplers
import nodes
import torch

from devtools.bench.bench_delayed_negative import CFG, SCHEDULER, SEED, bench_inputs
from delayed_negative.clock.step_clock import StepClock

SAMPLERS = ("euler", "heun", "dpmpp_2m_sde", "uni_pc", "sa_solver_pece")


def median_time(action, repeats: int) -> float:
    action()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run(options) -> list[str]:
    model, _clip, positive, negative, latent = bench_inputs(options)
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(SEED))
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_model = model.model  # what sampling gives the guider; the dry run reads its model_sampling
    lines = [f"Learning the steps (dry run) / one stock KSampler run: {SCHEDULER}, {options.steps} steps, "
             f"{options.size}x{options.size} image, medians of {options.repeats} runs"]
    for name in SAMPLERS:
        sampler = comfy.samplers.sampler_object(name)
        sigmas = comfy.samplers.KSampler(model, options.steps, "cpu", name, SCHEDULER).sigmas

        def learn():
            clock = StepClock.learn(sampler, guider, sigmas, noise, latent["samples"], seed=SEED)
            assert clock.pattern is not None, f"{name} was not learned"

        def stock():
            nodes.KSampler().sample(model, SEED, options.steps, CFG, name, SCHEDULER, positive, negative, latent)

        dry, sampling = median_time(learn, options.repeats), median_time(stock, options.repeats)
        lines.append(f"  {name:15s} ratio {dry / sampling:.5f} ({dry * 1000:.2f} ms / {sampling:.2f} s; "
                     f"{dry * 1000 / options.steps:.3f} ms per step)")
    return lines
