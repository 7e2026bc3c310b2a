"""An independent reference for the by-sigma fallback: ComfyUI's own timestep ranges.

Where a sampler's steps cannot be learned (dpm_fast and dpm_adaptive step on a grid of their
own), the pack documents that the negative acts from the first model evaluation at or below the
start step's sigma. The reference does not restate that rule (nor the step clock's bisect over
the schedule): it gives the stock KSampler two unconditional conds, the negative limited to
sigmas at or below the start step's sigma and the empty prompt to the sigmas above it, by the
`timestep_start` / `timestep_end` keys that ConditioningSetTimestepRange sets, and ComfyUI's own
`get_area_and_mult` decides at every evaluation which of them is in force. An instrumented
model logs what each evaluation saw, for both runs.
"""

import comfy.samplers
import nodes

from instrumented import instrument

# Sigmas reach the model as float32; the pack allows the same relative rounding (step_clock.SAME_SIGMA).
ROUNDING = 1e-5


def stock_timestep_range_log(model, prompts, sampler, scheduler, steps, start_step, seed, cfg, latent):
    """The Evaluations of a stock KSampler run whose unconditional branch holds the empty prompt
    above the schedule's sigma of `start_step` and the negative at or below it."""
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps)
    boundary = float(sigmas[start_step]) * (1 + ROUNDING)
    unconditional = [[prompts["negative"], {"timestep_start": boundary}],
                     [prompts["empty"], {"timestep_end": boundary}]]
    log = []
    nodes.KSampler().sample(instrument(model, prompts, log), seed, steps, cfg, sampler, scheduler,
                            [[prompts["positive"], {}]], unconditional, latent)
    return log


def assert_same_evaluations(log, reference):
    """Both runs evaluated the model at the same sigmas, each time with the same unconditional prompt."""
    ours = [(round(e.sigma, 4), e.uncond) for e in log]
    stock = [(round(e.sigma, 4), e.uncond) for e in reference]
    assert ours == stock, f"the pack's evaluations {ours} differ from the stock timestep ranges' {stock}"
    assert {uncond for _sigma, uncond in ours} == {"empty", "negative"}
