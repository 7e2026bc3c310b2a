"""Every timing unit of the negative's window, on values that fall between two steps.

samplers/negative_window.py documents the rounding: `step` takes whole steps only; a
`fraction of steps` rounds up (0.3 of 8 steps = 2.4 → step 3); a `sigma` resolves to the
first step whose sigma is at or below it. Values that land exactly on a step cannot tell a
rounding rule from its neighbour (round down, or "the last step at or above"), so every value
here lies strictly inside a step, at both ends of the window.

First on the schedule alone (resolve_window on a real ComfyUI schedule), then through the
real nodes on the generated checkpoint (stock CheckpointLoaderSimple, CLIP-encoded prompts),
against a chain of stock KSamplerAdvanced passes.
"""

import math

import pytest
import torch

from comfy_extras import nodes_custom_sampler as custom
from devtools.models.tiny_models import tiny_sd15

import stock
from delayed_negative.nodes.delayed_negative import DelayedNegativeGuiderNode, DelayedNegativeKSampler
from delayed_negative.samplers.ksampler import full_schedule
from delayed_negative.samplers.negative_window import (NEVER, START_UNITS, NegativeTiming, NegativeWindow,
                                                       resolve_window)

STEPS = 8
START, END = 3, 6  # the window every case below must resolve to: steps 3, 4 and 5


def between(sigmas, step: int, share: float) -> float:
    """A sigma strictly inside the interval sigmas[step - 1] > sigma > sigmas[step], `share` of the
    way down from sigmas[step - 1]: the first step at or below it is `step`, the last at or above
    it is step - 1."""
    high, low = float(sigmas[step - 1]), float(sigmas[step])
    value = high - share * (high - low)
    assert high > value > low
    return value


# For each unit, values strictly inside a step that the documented rounding resolves to
# START and END; round-down (fraction) and "last step at or above" (sigma) give START-1, END-1.
def fraction_cases(sigmas):
    return [(0.3, 0.7),  # 2.4 → 3, 5.6 → 6
            (2.01 / STEPS, 5.99 / STEPS),  # just past the step before
            (2.99 / STEPS, 5.01 / STEPS)]  # just short of the step itself


def sigma_cases(sigmas):
    return [(between(sigmas, START, share), between(sigmas, END, share)) for share in (0.5, 0.01, 0.99)]


def step_cases(sigmas):
    return [(float(START), float(END))]  # whole steps only: values between steps are refused below


BETWEEN_STEPS = {"step": step_cases, "fraction of steps": fraction_cases, "sigma": sigma_cases}


@pytest.fixture(scope="module")
def schedules():
    model = tiny_sd15()
    return {scheduler: full_schedule(model, STEPS, "euler", scheduler)
            for scheduler in ("karras", "normal", "exponential")}


def test_every_unit_of_the_module_has_cases_between_steps():
    # A unit added to negative_window.py must get its own cases here.
    assert set(START_UNITS) == set(BETWEEN_STEPS)


@pytest.mark.parametrize("scheduler", ["karras", "normal", "exponential"])
@pytest.mark.parametrize("unit", START_UNITS)
def test_values_inside_a_step_resolve_by_the_documented_rounding_at_both_ends(schedules, scheduler, unit):
    sigmas = schedules[scheduler]
    for start, end in BETWEEN_STEPS[unit](sigmas):
        window = resolve_window(NegativeTiming(start, end, unit), sigmas)
        assert window == NegativeWindow(START, END), f"{unit} {start:g}..{end:g} on {scheduler}"
        # each end on its own, the other left open or at 0
        assert resolve_window(NegativeTiming(start, NEVER, unit), sigmas) == NegativeWindow(START, STEPS)
        assert resolve_window(NegativeTiming(0.0 if unit != "sigma" else float(sigmas[0]), end, unit),
                              sigmas) == NegativeWindow(0, END)


def test_fraction_rounds_up_on_every_step_of_the_schedule(schedules):
    sigmas = schedules["karras"]
    for step in range(1, STEPS + 1):
        for inside in (step - 0.999, step - 0.5, step - 0.001):
            assert resolve_window(NegativeTiming(inside / STEPS, NEVER, "fraction of steps"), sigmas).start_step \
                == step == math.ceil(inside)
        assert resolve_window(NegativeTiming(step / STEPS, NEVER, "fraction of steps"), sigmas).start_step == step
    # The float product 0.1 * 30 is 3.0000000000000004: still step 3, not 4.
    thirty = torch.linspace(14.6, 0.0, 31)
    assert resolve_window(NegativeTiming(0.1, NEVER, "fraction of steps"), thirty).start_step == 3


def test_sigma_resolves_to_the_first_step_at_or_below_on_every_step_of_the_schedule(schedules):
    sigmas = schedules["exponential"]
    for step in range(1, STEPS):
        for share in (0.001, 0.5, 0.999):
            value = between(sigmas, step, share)
            assert resolve_window(NegativeTiming(value, NEVER, "sigma"), sigmas).start_step == step
        exact = float(sigmas[step])
        assert resolve_window(NegativeTiming(exact, NEVER, "sigma"), sigmas).start_step == step
    assert resolve_window(NegativeTiming(float(sigmas[0]), NEVER, "sigma"), sigmas).start_step == 0


def test_a_sigma_at_the_ends_of_the_steps_resolves_and_one_outside_them_is_refused(schedules):
    sigmas = schedules["karras"]
    highest, lowest = float(sigmas[0]), float(sigmas[STEPS - 1])
    assert resolve_window(NegativeTiming(highest, NEVER, "sigma"), sigmas).start_step == 0
    assert resolve_window(NegativeTiming(highest * (1 + 5e-7), NEVER, "sigma"), sigmas).start_step == 0
    assert resolve_window(NegativeTiming(lowest, NEVER, "sigma"), sigmas).start_step == STEPS - 1
    assert resolve_window(NegativeTiming(highest, lowest, "sigma"), sigmas) == NegativeWindow(0, STEPS - 1)
    # Above the first step, or inside the last step below its start (its end sigma is 0): no step starts there.
    for name, timing, value in (("negative_start", lambda v: NegativeTiming(v, NEVER, "sigma"), highest * 1.01),
                                ("negative_end", lambda v: NegativeTiming(highest, v, "sigma"), lowest * 0.99)):
        message = (rf"{name} is sigma {value:g}, outside this schedule's steps, which start at sigmas from "
                   rf"{highest:.4g} \(step 0\) down to {lowest:.4g} \(step {STEPS - 1}\)\. Pick a sigma")
        with pytest.raises(ValueError, match=message):
            resolve_window(timing(value), sigmas)


@pytest.mark.parametrize("value", [2.5, 0.001, 5.999])
def test_a_step_between_whole_steps_is_refused_at_either_end(schedules, value):
    sigmas = schedules["karras"]
    with pytest.raises(ValueError, match="negative_start.*whole number"):
        resolve_window(NegativeTiming(value, NEVER, "step"), sigmas)
    with pytest.raises(ValueError, match="negative_end.*whole number"):
        resolve_window(NegativeTiming(0.0, value + 1, "step"), sigmas)


@pytest.mark.parametrize("unit, start, end", [("fraction of steps", 0.3, 0.33), ("step", 3.0, 3.0)])
def test_two_values_inside_the_same_step_leave_an_empty_window_and_are_refused(schedules, unit, start, end):
    with pytest.raises(ValueError, match="negative_end .* must come after negative_start"):
        resolve_window(NegativeTiming(start, end, unit), schedules["karras"])


def test_the_window_holds_exactly_its_steps():
    window = NegativeWindow(START, END)
    assert [step for step in range(STEPS) if window.uses_negative(step)] == [3, 4, 5]


# --- through the real nodes, against stock KSamplerAdvanced passes -------------------------------------------

SEED, CFG = 5, 6.5


@pytest.fixture(scope="module")
def sd15(checkpoint):
    model, clip, _vae = checkpoint
    return {"model": model, "clip": clip, "positive": stock.encode(clip, "portrait photo of a man"),
            "negative": stock.encode(clip, "mustache"), "empty": stock.encode(clip, ""),
            "latent": stock.empty_latent(64, 48)}


def stock_window(sd15, start: int, end: int):
    """Empty negative before `start`, the negative on start..end-1, empty again: three stock passes."""
    latent, add_noise = sd15["latent"], "enable"
    for first, last, negative in ((0, start, "empty"), (start, end, "negative"), (end, 10000, "empty")):
        latent = stock.ksampler_advanced(sd15["model"], add_noise, SEED, STEPS, CFG, "euler", "karras",
                                         sd15["positive"], sd15[negative], latent, first, last,
                                         "enable" if last < STEPS else "disable")
        add_noise = "disable"
    return latent["samples"]


def node(sd15, start, end, unit):
    return DelayedNegativeKSampler.execute(
        model=sd15["model"], seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="karras",
        positive=sd15["positive"], negative=sd15["negative"], latent_image=sd15["latent"], denoise=1.0,
        negative_start=start, negative_end=end, timing_unit=unit, before_negative="empty prompt",
        clip=sd15["clip"]).result[0]["samples"]


def guider(sd15, start, end, unit):
    made = DelayedNegativeGuiderNode.execute(
        model=sd15["model"], positive=sd15["positive"], negative=sd15["negative"], cfg=CFG, negative_start=start,
        negative_end=end, timing_unit=unit, before_negative="empty prompt", clip=sd15["clip"]).result[0]
    sigmas = custom.BasicScheduler.execute(sd15["model"], "karras", STEPS, 1.0).result[0]
    return custom.SamplerCustomAdvanced.execute(custom.RandomNoise.execute(SEED).result[0], made,
                                                custom.KSamplerSelect.execute("euler").result[0], sigmas,
                                                sd15["latent"]).result[0]["samples"]


def close(a, b):
    # The stock chain scales the latent out of and back into the model's space between passes.
    return torch.allclose(a, b, rtol=1e-4, atol=1e-3)


def test_every_unit_between_steps_equals_the_stock_passes_through_the_nodes(sd15):
    sigmas = full_schedule(sd15["model"], STEPS, "euler", "karras")
    reference = stock_window(sd15, START, END)
    # The check can see an off-by-one: the window one step earlier is a different latent.
    assert not close(node(sd15, START - 1, END - 1, "step"), reference)
    for unit in START_UNITS:
        start, end = BETWEEN_STEPS[unit](sigmas)[0]
        assert close(node(sd15, start, end, unit), reference), f"KSampler node, {unit} {start:g}..{end:g}"
    # The guider (SamplerCustomAdvanced) resolves the units on the SIGMAS it is given.
    for unit, case in (("fraction of steps", 1), ("sigma", 2)):
        start, end = BETWEEN_STEPS[unit](sigmas)[case]
        assert close(guider(sd15, start, end, unit), reference), f"guider, {unit} {start:g}..{end:g}"


@pytest.mark.parametrize("value", [1.0001, 1.5, -0.1])
def test_a_fraction_outside_0_to_1_is_refused(schedules, value):
    with pytest.raises(ValueError, match="fraction of steps lies between 0 and 1"):
        resolve_window(NegativeTiming(value, NEVER, "fraction of steps"), schedules["karras"])
