"""(iv) For every sampler ComfyUI has, the switch to the negative falls exactly at step k.

An instrumented model records which unconditional conditioning each model evaluation saw;
the reference step of each evaluation is the sampler's own loop counter.
"""

import pytest
import torch

import comfy.samplers
from tiny_models import tiny_sd15

from delayed_negative.samplers.ksampler import delayed_negative_ksampler, full_schedule
from delayed_negative.samplers.negative_window import NegativeTiming
from delayed_negative.samplers.step_clock import GRID, NEXT_SIGMA, StepClock
from instrumented import instrument

STEPS = 8
START = 3
SAMPLERS = comfy.samplers.KSampler.SAMPLERS
# Samplers that have no per-step loop: their evaluations belong to steps by sigma alone.
BY_SIGMA = {"dpm_fast", "dpm_adaptive"}


@pytest.fixture(scope="module")
def model():
    return tiny_sd15()


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return {name: torch.randn(1, 77, 768, generator=generator) for name in ("positive", "negative", "empty")}


def run(model, prompts, sampler, scheduler, denoise=1.0, **advanced):
    log = []
    patched = instrument(model, prompts, log)
    condition = {name: [[tensor, {}]] for name, tensor in prompts.items()}
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    delayed_negative_ksampler(patched, 7, STEPS, 5.0, sampler, scheduler, condition["positive"],
                              condition["negative"], latent, NegativeTiming(START), condition["empty"],
                              denoise=denoise, **advanced)
    return log


def reference_steps(log, model, sampler, scheduler, denoise, first_step=0):
    if sampler not in BY_SIGMA:
        return [first_step + evaluation.sampler_step for evaluation in log]
    sigmas = full_schedule(model, STEPS, sampler, scheduler, denoise)[first_step:]
    return [first_step + max(i for i in range(len(sigmas) - 1) if float(sigmas[i]) >= e.sigma * (1 - 1e-5))
            if e.sigma <= float(sigmas[0]) else first_step for e in log]


def assert_switch_at_start(log, steps):
    assert log, "the model was never evaluated"
    seen = [(step, evaluation.uncond) for step, evaluation in zip(steps, log)]
    wrong = [(step, uncond) for step, uncond in seen if uncond != ("negative" if step >= START else "empty")]
    assert not wrong, f"evaluations on the wrong side of step {START}: {wrong[:5]} of {seen}"
    assert any(step < START for step in steps) and any(step >= START for step in steps)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("scheduler", ["karras", "exponential", "linear_quadratic"])
def test_every_sampler_switches_exactly_at_the_start_step(model, prompts, sampler, scheduler):
    log = run(model, prompts, sampler, scheduler)
    assert_switch_at_start(log, reference_steps(log, model, sampler, scheduler, 1.0))


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpm_2", "dpmpp_sde", "dpmpp_2m_sde", "uni_pc", "heunpp2",
                                     "sa_solver_pece"])
@pytest.mark.parametrize("scheduler", ["normal", "simple", "sgm_uniform", "ddim_uniform", "beta", "kl_optimal"])
def test_switch_is_exact_with_denoise_below_one(model, prompts, sampler, scheduler):
    log = run(model, prompts, sampler, scheduler, denoise=0.5)
    assert_switch_at_start(log, reference_steps(log, model, sampler, scheduler, 0.5))


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2s_ancestral", "dpmpp_2m_sde", "uni_pc"])
def test_steps_count_the_whole_schedule_when_starting_later(model, prompts, sampler):
    log = run(model, prompts, sampler, "karras", start_at_step=2, end_at_step=6, return_with_leftover_noise=True)
    steps = reference_steps(log, model, sampler, "karras", 1.0, first_step=2)
    assert min(steps) == 2 and max(steps) == 5
    assert_switch_at_start(log, steps)


def test_clock_attributes_second_order_corrector_to_its_own_step():
    # heun evaluates sigmas 10, 5 | 5, 2 | 2, 1 | 1: the repeated sigma opens the next step.
    clock = StepClock([10.0, 5.0, 2.0, 1.0, 0.0], rule=NEXT_SIGMA)
    assert [clock.step_of(s) for s in (10, 5, 5, 2, 2, 1, 1)] == [0, 0, 1, 1, 2, 2, 3]
    # dpm_2_ancestral's midpoint can fall below the next step's sigma and still be its step's.
    clock = StepClock([10.0, 5.0, 2.0, 1.0, 0.0], rule=GRID)
    assert [clock.step_of(s) for s in (10, 4.5, 5, 3, 2, 1.5, 1)] == [0, 0, 1, 1, 2, 2, 3]
