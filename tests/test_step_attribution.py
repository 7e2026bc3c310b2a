"""(iv) For every sampler, known or not, the switch to the negative falls exactly at step k.

An instrumented model records which unconditional conditioning each model evaluation saw;
the reference step of each evaluation is the sampler's own loop counter. Every name in the
running host's KSampler.SAMPLERS is covered, so a sampler added by a new ComfyUI release is
tested the day the host is. Samplers that do not step on the schedule (dpm_fast, dpm_adaptive)
or that the pack cannot learn (third-party ones below) must say so and follow the documented
fallback: by sigma.
"""

import logging
from itertools import pairwise

import comfy.samplers
import pytest
import third_party_samplers
import torch
from delayed_negative.samplers.delayed_negative_guider import DelayedNegativeGuider
from delayed_negative.samplers.ksampler import delayed_negative_ksampler, full_schedule
from delayed_negative.samplers.negative_window import NegativeTiming
from delayed_negative.clock.step_clock import StepClock
from instrumented import instrument
from sigma_reference import assert_same_evaluations, stock_timestep_range_log
from devtools.models.tiny_models import tiny_sd15

STEPS = 8
START = 3
SAMPLERS = comfy.samplers.KSampler.SAMPLERS
# Samplers whose evaluations sit on a grid of their own, not the schedule's steps.
OWN_GRID = {"dpm_fast", "dpm_adaptive"}


@pytest.fixture(scope="module")
def model():
    return tiny_sd15()


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return {name: torch.randn(1, 77, 768, generator=generator) for name in ("positive", "negative", "empty")}


def conditioning(prompts):
    return {name: [[tensor, {}]] for name, tensor in prompts.items()}


def run(model, prompts, sampler, scheduler, denoise=1.0, **advanced):
    log = []
    condition = conditioning(prompts)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    delayed_negative_ksampler(instrument(model, prompts, log), 7, STEPS, 5.0, sampler, scheduler,
                              condition["positive"], condition["negative"], latent, NegativeTiming(START),
                              condition["empty"], denoise=denoise, **advanced)
    return log


def loop_steps(log, first_step=0):
    assert all(e.sampler_step is not None for e in log), "the reference could not find the sampler's loop"
    return [first_step + evaluation.sampler_step for evaluation in log]


def assert_switch_at_start(log, steps, start=START):
    assert log, "the model was never evaluated"
    seen = [(step, evaluation.uncond) for step, evaluation in zip(steps, log)]
    wrong = [(step, uncond) for step, uncond in seen if uncond != ("negative" if step >= start else "empty")]
    assert not wrong, f"evaluations on the wrong side of step {start}: {wrong[:5]} of {seen}"
    assert any(step < start for step in steps) and any(step >= start for step in steps)


def assert_switch_by_sigma(log, start_sigma):
    """The documented fallback: the negative from the first evaluation at or below the start
    step's sigma, the empty prompt above it."""
    wrong = [(e.sigma, e.uncond) for e in log
             if e.uncond != ("negative" if e.sigma <= start_sigma * (1 + 1e-5) else "empty")]
    assert not wrong, f"evaluations on the wrong side of sigma {start_sigma:.4g}: {wrong[:5]}"
    assert {e.uncond for e in log} == {"empty", "negative"}


def notices(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "delayed_negative" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("scheduler", ["karras", "exponential", "linear_quadratic"])
def test_every_sampler_switches_exactly_at_the_start_step(model, prompts, sampler, scheduler, caplog):
    log = run(model, prompts, sampler, scheduler)
    if sampler in OWN_GRID:
        assert any("by sigma" in notice for notice in notices(caplog)), "the fallback was not announced"
        # The reference is ComfyUI's own timestep ranges, not the clock's rule (tests/sigma_reference.py).
        assert_same_evaluations(log, stock_timestep_range_log(model, prompts, sampler, scheduler, STEPS, START, 7,
                                                              5.0, {"samples": torch.zeros(1, 4, 8, 8)}))
    else:
        assert notices(caplog) == []
        assert_switch_at_start(log, loop_steps(log))


def test_every_sampler_of_the_host_is_covered():
    # Not a tautology: the list must be the host's own, and each name a sampler ComfyUI can build.
    assert len(SAMPLERS) >= 30 and len(set(SAMPLERS)) == len(SAMPLERS)
    assert all(isinstance(comfy.samplers.sampler_object(name), comfy.samplers.Sampler) for name in SAMPLERS)


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpm_2", "dpmpp_sde", "dpmpp_2m_sde", "uni_pc", "heunpp2",
                                     "sa_solver_pece"])
@pytest.mark.parametrize("scheduler", ["normal", "simple", "sgm_uniform", "ddim_uniform", "beta", "kl_optimal"])
def test_switch_is_exact_with_denoise_below_one(model, prompts, sampler, scheduler):
    log = run(model, prompts, sampler, scheduler, denoise=0.5)
    assert_switch_at_start(log, loop_steps(log))


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2s_ancestral", "dpmpp_2m_sde", "uni_pc"])
def test_steps_count_the_whole_schedule_when_starting_later(model, prompts, sampler):
    log = run(model, prompts, sampler, "karras", start_at_step=2, end_at_step=6, return_with_leftover_noise=True)
    steps = loop_steps(log, first_step=2)
    assert min(steps) == 2 and max(steps) == 5
    assert_switch_at_start(log, steps)


# Samplers the pack has never seen ----------------------------------------------------------------------------

def run_custom(model, prompts, sampler_function, start=START, sigmas=None):
    """`sampler_function`: a k-diffusion-style function, or a SAMPLER object as it is."""
    """SamplerCustomAdvanced's path: the Delayed Negative Guider with a SAMPLER built from a function."""
    log = []
    condition = conditioning(prompts)
    guider = DelayedNegativeGuider(instrument(model, prompts, log), NegativeTiming(start))
    guider.set_conds(condition["positive"], condition["negative"], condition["empty"])
    guider.set_cfg(5.0)
    sigmas = full_schedule(model, STEPS, "euler", "karras") if sigmas is None else sigmas
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7))
    sampler = sampler_function if isinstance(sampler_function, comfy.samplers.Sampler) else \
        comfy.samplers.KSAMPLER(sampler_function)
    guider.sample(noise, torch.zeros(1, 4, 8, 8), sampler, sigmas, seed=7)
    return log, sigmas


@pytest.mark.parametrize("function", [third_party_samplers.sample_heun_reporting_first,
                                      third_party_samplers.sample_heun_reporting_last])
def test_an_unknown_second_order_sampler_switches_exactly(model, prompts, function, caplog):
    log, _ = run_custom(model, prompts, function)
    # Its corrector evaluates the next step's sigma: by sigma alone it would switch one evaluation early.
    assert len(log) == 2 * STEPS - 1
    assert notices(caplog) == []
    assert_switch_at_start(log, loop_steps(log))


def test_a_sampler_whose_steps_begin_inside_their_intervals_switches_exactly(model, prompts, caplog):
    log, _ = run_custom(model, prompts, third_party_samplers.sample_midpoint)
    assert len(log) == STEPS and notices(caplog) == []
    assert_switch_at_start(log, loop_steps(log))


def test_a_step_that_repeats_the_previous_sigma_is_still_its_own_step(model, prompts, caplog):
    schedule = full_schedule(model, STEPS, "euler", "karras")
    repeated = torch.cat([schedule[:START], schedule[START - 1:]])  # step START begins at step START-1's sigma
    log, _ = run_custom(model, prompts, third_party_samplers.sample_heun_reporting_first, sigmas=repeated)
    assert notices(caplog) == []
    assert_switch_at_start(log, loop_steps(log))


@pytest.mark.parametrize("start", [1, START, STEPS - 1])  # the first and the last steps included
def test_a_sampler_that_never_reports_its_steps_is_announced_and_goes_by_sigma(model, prompts, start, caplog):
    log, sigmas = run_custom(model, prompts, third_party_samplers.sample_heun_silent, start)
    said = notices(caplog)
    assert len(said) == 1 and "heun_silent" in said[0] and "by sigma" in said[0]
    assert f"it reported 0 steps for a schedule of {STEPS}" in said[0]
    assert_switch_by_sigma(log, float(sigmas[start]))


def test_a_sampler_that_is_no_ksampler_is_named_by_its_class(model, prompts, caplog):
    log, sigmas = run_custom(model, prompts, third_party_samplers.SilentEulerSampler())
    said = notices(caplog)
    assert len(said) == 1 and "The sampler 'SilentEulerSampler' does not report its steps" in said[0]
    assert_switch_by_sigma(log, float(sigmas[START]))


@pytest.mark.parametrize("function", [third_party_samplers.sample_euler_looking_back,
                                      third_party_samplers.sample_euler_reusing_its_last_prediction,
                                      third_party_samplers.sample_midpoint_reusing_at_step_3])
def test_a_sampler_whose_steps_begin_off_the_schedule_is_announced_and_goes_by_sigma(model, prompts, function,
                                                                                      caplog):
    log, sigmas = run_custom(model, prompts, function)
    said = notices(caplog)
    assert len(said) == 1 and function.__name__.removeprefix("sample_") in said[0]
    assert "its steps do not begin at the schedule's sigmas" in said[0]
    assert_switch_by_sigma(log, float(sigmas[START]))


def test_an_evaluation_the_dry_run_never_made_is_announced_and_goes_by_sigma(model, prompts, caplog):
    # The extra evaluation is at the last step's sigma: by sigma it is the last step, where the negative starts.
    log, _ = run_custom(model, prompts, third_party_samplers.sample_euler_with_a_final_touch, STEPS - 1)
    said = notices(caplog)
    assert len(log) == STEPS + 1
    assert len(said) == 1 and "predicted no evaluation" in said[0] and f"evaluation {STEPS + 1}" in said[0]
    assert [e.uncond for e in log] == ["empty"] * (STEPS - 1) + ["negative"] * 2
    assert_switch_at_start(log, loop_steps(log), STEPS - 1)


def test_a_sampler_that_adapts_to_the_model_is_announced_when_it_leaves_its_dry_run(model, prompts, caplog):
    log, sigmas = run_custom(model, prompts, third_party_samplers.sample_euler_adaptive)
    said = notices(caplog)
    assert len(said) == 1 and "'euler_adaptive'" in said[0] and "adapts its steps" in said[0]
    assert "evaluation 2" in said[0]
    # Its second evaluation is a midpoint; the dry run (zero predictions, no midpoints) had the next step's sigma.
    assert f"predicted sigma {float(sigmas[1]):.5g}" in said[0]
    # Its midpoints lie inside their own step, so by sigma it is still exact.
    assert_switch_at_start(log, loop_steps(log))


def test_by_sigma_an_evaluation_belongs_to_the_step_whose_interval_holds_it():
    sigmas = [14.6, 8.0, 4.0, 2.0, 1.0, 0.5, 0.2, 0.03, 0.0]
    clock = StepClock(sigmas)

    def holding(sigma):  # sigmas[i] >= sigma > sigmas[i+1]; above the first step is step 0, at the end the last
        inside = [i for i in range(len(sigmas) - 1) if sigmas[i] >= sigma > sigmas[i + 1]]
        return inside[0] if inside else (0 if sigma > sigmas[0] else len(sigmas) - 2)

    probes = sigmas + [(a + b) / 2 for a, b in pairwise(sigmas)] + [20.0, 14.6 * 0.9999999]
    assert [clock.step_by_sigma(sigma) for sigma in probes] == [holding(sigma) for sigma in probes]
    assert clock.step_by_sigma(0.0) == 7 and clock.step_by_sigma(14.6) == 0 and clock.step_by_sigma(20.0) == 0


def test_dry_run_leaves_the_random_state_and_the_result_alone(model, prompts):
    # An ancestral sampler on the global generator (no seed): the dry run must not draw from it.
    condition = conditioning(prompts)
    sigmas = full_schedule(model, STEPS, "euler_ancestral", "karras")
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7))

    def sample(guider):
        torch.manual_seed(11)
        out = guider.sample(noise, torch.zeros(1, 4, 8, 8), comfy.samplers.sampler_object("euler_ancestral"), sigmas)
        return out, torch.rand(1)

    stock = comfy.samplers.CFGGuider(model)
    stock.set_conds(condition["positive"], condition["negative"])
    stock.set_cfg(5.0)
    ours = DelayedNegativeGuider(model, NegativeTiming(0))
    ours.set_conds(condition["positive"], condition["negative"], condition["empty"])
    ours.set_cfg(5.0)
    (stock_out, stock_next), (our_out, our_next) = sample(stock), sample(ours)
    assert torch.equal(our_out, stock_out) and torch.equal(our_next, stock_next)
