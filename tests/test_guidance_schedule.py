"""The Guidance Schedule proven against chains of stock KSampler Advanced passes, on the generated
SD1.5-architecture checkpoint loaded by the stock CheckpointLoaderSimple and prompts encoded by
the stock CLIPTextEncode.

A chain of one-step stock passes can use a different cfg and negative on every step: it is the
reference for per-step cfg, the ramp and the interval. It moves the latent out of and back into
the model's space between passes (x / 0.18215 * 0.18215), so against one pass of the pack it can
differ in the last float bits; the pack's own Advanced node chained the same way is bit-identical.
"""

import math

import nodes
import pytest
import torch

import stock
from delayed_negative.nodes.delayed_negative import (DelayedNegativeGuiderNode, DelayedNegativeKSampler,
                                                     DelayedNegativeKSamplerAdvanced)
from delayed_negative.nodes.guidance_schedule import DelayedNegativeGuidanceSchedule

SEED, STEPS, CFG, START = 42, 8, 6.5, 3


@pytest.fixture(scope="module")
def sd15(checkpoint):
    model, clip, _vae = checkpoint
    return {
        "model": model, "clip": clip,
        "positive": stock.encode(clip, "portrait photo of a man"),
        "negative": stock.encode(clip, "mustache"),
        "empty": stock.encode(clip, ""),
        "latent": stock.empty_latent(64, 48),
    }


def schedule(cfg_curve="constant", cfg_list="8", cfg_first=8.0, cfg_last=4.0, first=0, last=-1, ramp=0,
             guidance_start=0.0, guidance_end=-1.0, unit="step"):
    return DelayedNegativeGuidanceSchedule.execute(cfg_curve, cfg_list, cfg_first, cfg_last, first, last, ramp,
                                                   guidance_start, guidance_end, unit).result[0]


def delayed(sd15, sampler, scheduler, guidance=None, start=START, before="empty prompt"):
    return DelayedNegativeKSampler.execute(
        sd15["model"], SEED, STEPS, CFG, sampler, scheduler, sd15["positive"], sd15["negative"], sd15["latent"],
        1.0, start, -1.0, "step", before, sd15["clip"], None, guidance).result[0]["samples"]


def stock_chain(sd15, sampler, scheduler, cfg_of_step, negative_of_step):
    """One stock KSampler Advanced pass per step, each with its own cfg and negative."""
    latent, add_noise = sd15["latent"], "enable"
    for step in range(STEPS):
        last = step == STEPS - 1
        latent = stock.ksampler_advanced(sd15["model"], add_noise, SEED, STEPS, cfg_of_step(step), sampler, scheduler,
                                         sd15["positive"], negative_of_step(step), latent, step, step + 1,
                                         "disable" if last else "enable")
        add_noise = "disable"
    return latent["samples"]


def delayed_on_the_empty_prompt_first(sd15):
    return lambda step: sd15["negative"] if step >= START else sd15["empty"]


# Defaults change nothing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler, scheduler", [("euler", "karras"), ("heun", "normal"), ("dpmpp_2m_sde", "exponential")])
def test_the_default_schedule_is_bit_identical_to_no_schedule(sd15, sampler, scheduler):
    assert torch.equal(delayed(sd15, sampler, scheduler, schedule()), delayed(sd15, sampler, scheduler))


def test_a_constant_schedule_from_step_zero_is_the_stock_ksampler(sd15):
    expected = stock.ksampler(sd15["model"], SEED, STEPS, CFG, "dpmpp_2m", "karras", sd15["positive"],
                              sd15["negative"], sd15["latent"])["samples"]
    assert torch.equal(delayed(sd15, "dpmpp_2m", "karras", schedule(), start=0), expected)


def test_the_guider_takes_the_schedule_like_the_ksampler(sd15):
    from comfy_extras import nodes_custom_sampler as custom

    plan = schedule("list", "7, 6, 5, 4, 3")
    guider = DelayedNegativeGuiderNode.execute(sd15["model"], sd15["positive"], sd15["negative"], CFG, START, -1.0,
                                               "step", "empty prompt", sd15["clip"], None, plan).result[0]
    sigmas = custom.BasicScheduler.execute(sd15["model"], "karras", STEPS, 1.0).result[0]
    out = custom.SamplerCustomAdvanced.execute(custom.RandomNoise.execute(SEED).result[0], guider,
                                               custom.KSamplerSelect.execute("heun").result[0], sigmas,
                                               sd15["latent"]).result[0]
    assert torch.equal(out["samples"], delayed(sd15, "heun", "karras", plan))


# cfg per step -----------------------------------------------------------------------------------------------

LIST = "9, 8, 7.5, 7, 6, 5, 4.5"  # seven values for eight steps: the last one holds


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_a_cfg_list_is_a_chain_of_stock_passes_with_those_cfgs(sd15, sampler):
    cfgs = [9, 8, 7.5, 7, 6, 5, 4.5, 4.5]
    reference = stock_chain(sd15, sampler, "normal", lambda step: cfgs[step], delayed_on_the_empty_prompt_first(sd15))
    result = delayed(sd15, sampler, "normal", schedule("list", LIST))
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(result, delayed(sd15, sampler, "normal"), atol=1e-2)


def test_the_advanced_node_chained_step_by_step_is_the_stock_chain_bit_for_bit(sd15):
    cfgs = [9, 8, 7.5, 7, 6, 5, 4.5, 4.5]
    reference = stock_chain(sd15, "heun", "karras", lambda step: cfgs[step], delayed_on_the_empty_prompt_first(sd15))
    plan, latent, add_noise = schedule("list", LIST), sd15["latent"], "enable"
    for step in range(STEPS):
        # Each pass is told its place in the whole schedule (start_at_step): cfg and negative follow it.
        latent = DelayedNegativeKSamplerAdvanced.execute(
            sd15["model"], add_noise, SEED, STEPS, CFG, "heun", "karras", sd15["positive"], sd15["negative"], latent,
            step, step + 1, "disable" if step == STEPS - 1 else "enable", START, -1.0, "step", "empty prompt",
            sd15["clip"], None, plan).result[0]
        add_noise = "disable"
    assert torch.equal(latent["samples"], reference)


@pytest.mark.parametrize("curve", ["linear", "cosine"])
def test_a_cfg_curve_over_a_step_range_is_a_chain_of_stock_passes(sd15, curve):
    # From 9 at step 2 to 3 at step 6, flat before and after.
    def cfg(step):
        progress = min(max((step - 2) / 4, 0.0), 1.0)
        if curve == "cosine":
            progress = (1 - math.cos(math.pi * progress)) / 2
        return 9 + (3 - 9) * progress

    reference = stock_chain(sd15, "euler", "normal", cfg, delayed_on_the_empty_prompt_first(sd15))
    result = delayed(sd15, "euler", "normal", schedule(curve, cfg_first=9.0, cfg_last=3.0, first=2, last=6))
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)


# The negative ramp ------------------------------------------------------------------------------------------

def test_a_negative_ramp_is_a_chain_of_stock_passes_on_stock_conditioning_averages(sd15):
    # Two ramp steps after START: the negative's weight 1/3, then 2/3, then the negative itself.
    def negative(step):
        if step < START:
            return sd15["empty"]
        if step < START + 2:
            share = (step - START + 1) / 3
            return nodes.ConditioningAverage().addWeighted(sd15["negative"], sd15["empty"], share)[0]
        return sd15["negative"]

    reference = stock_chain(sd15, "heun", "normal", lambda step: CFG, negative)
    result = delayed(sd15, "heun", "normal", schedule(ramp=2))
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(result, delayed(sd15, "heun", "normal"), atol=1e-2)


def test_a_ramp_from_step_zero_starts_from_the_empty_prompt(sd15):
    # Without a ramp a start of 0 is the stock KSampler; with one, step 0 is still part empty prompt.
    ramped = delayed(sd15, "euler", "normal", schedule(ramp=3), start=0)
    assert not torch.allclose(ramped, delayed(sd15, "euler", "normal", start=0), atol=1e-2)


# The guidance interval --------------------------------------------------------------------------------------

@pytest.mark.parametrize("unit, start, end", [("step", 2, 6), ("fraction of steps", 0.25, 0.75)])
def test_guidance_only_inside_an_interval_is_stock_passes_with_cfg_one_outside(sd15, unit, start, end):
    def cfg(step):
        return CFG if 2 <= step < 6 else 1.0

    reference = stock_chain(sd15, "euler", "normal", cfg, delayed_on_the_empty_prompt_first(sd15))
    result = delayed(sd15, "euler", "normal", schedule(guidance_start=start, guidance_end=end, unit=unit))
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)


def test_an_interval_in_sigmas_picks_the_steps_of_those_sigmas(sd15):
    from delayed_negative.samplers.ksampler import full_schedule

    sigmas = full_schedule(sd15["model"], STEPS, "euler", "normal")
    by_step = delayed(sd15, "euler", "normal", schedule(guidance_start=2, guidance_end=6))
    # A sigma strictly between two steps' sigmas belongs to the later step (the first at or below it).
    between = schedule(guidance_start=float(sigmas[1] + sigmas[2]) / 2, guidance_end=float(sigmas[5] + sigmas[6]) / 2,
                       unit="sigma")
    assert torch.equal(delayed(sd15, "euler", "normal", between), by_step)


# Bad input --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    (dict(cfg_curve="list", cfg_list="8, eight"), "is not a list of numbers"),
    (dict(cfg_curve="list", cfg_list=" , "), "cfg_list is empty"),
    (dict(cfg_curve="list", cfg_list="8, -2"), "negative or infinite"),
    (dict(cfg_curve="linear", first=6, last=2), r"curve_last_step \(2\) comes before curve_first_step \(6\)"),
])
def test_a_bad_schedule_says_what_to_change(settings, message):
    with pytest.raises(ValueError, match=message):
        schedule(**settings)


def test_a_schedule_with_no_cfg_above_one_says_so(sd15):
    with pytest.raises(ValueError, match="cfg is 1 or below on every guided step"):
        delayed(sd15, "euler", "normal", schedule("list", "1, 1, 0.5"))


def test_an_empty_interval_says_so(sd15):
    with pytest.raises(ValueError, match=r"guidance_end \(2\) must come after guidance_start \(5\)"):
        delayed(sd15, "euler", "normal", schedule(guidance_start=5, guidance_end=2))


def test_a_ramp_needs_something_to_ramp_from(sd15):
    with pytest.raises(ValueError, match="A negative ramp blends from"):
        delayed(sd15, "euler", "normal", schedule(ramp=2), before="no guidance")


def test_inputs_are_not_changed(sd15):
    tensor, extras = sd15["negative"][0]
    before = tensor.clone(), dict(extras)
    delayed(sd15, "euler", "normal", schedule(ramp=2))
    assert torch.equal(tensor, before[0]) and extras.keys() == before[1].keys()
    assert all(extras[key] is value for key, value in before[1].items()) and len(sd15["negative"]) == 1


# In the attention chart -------------------------------------------------------------------------------------

def test_the_recording_knows_each_steps_cfg_and_the_chart_draws_it(sd15):
    from delayed_negative.nodes.attention_maps import (AttentionChart, CollectAttentionMaps,
                                                       RecordAttentionMaps)
    from delayed_negative.render.guidance_marks import CFG_COLOUR, UNGUIDED_SHADE

    model, recording = RecordAttentionMaps.execute(sd15["model"], sd15["clip"], "portrait photo of a man",
                                                   "mustache", "man", "mustache", "all").result
    samples = DelayedNegativeKSampler.execute(
        model, SEED, STEPS, CFG, "heun", "normal", sd15["positive"], sd15["negative"], sd15["latent"], 1.0, START,
        -1.0, "step", "empty prompt", sd15["clip"], None,
        schedule("list", LIST, guidance_start=1, guidance_end=7)).result[0]
    maps = CollectAttentionMaps.execute(recording, samples).result[0]
    # Written out: the list's values inside the interval (steps 1-6), no guidance (cfg 1) outside.
    assert maps.cfg.tolist() == [1.0, 8.0, 7.5, 7.0, 6.0, 5.0, 4.5, 1.0]

    with_schedule = AttentionChart.execute(maps, "", 0, -1).result[0][0]
    without = AttentionChart.execute(type(maps)(maps.tracks, maps.maps, maps.sigmas), "", 0, -1).result[0][0]
    colours = {tuple(pixel) for pixel in (with_schedule * 255).round().to(torch.uint8).reshape(-1, 3).tolist()}
    colours_without = {tuple(p) for p in (without * 255).round().to(torch.uint8).reshape(-1, 3).tolist()}
    assert CFG_COLOUR in colours and UNGUIDED_SHADE in colours
    assert CFG_COLOUR not in colours_without and UNGUIDED_SHADE not in colours_without
    # The shade covers the first and the last step only: at both ends of the plot, not in the middle.
    shaded = ((with_schedule * 255).round() == torch.tensor(UNGUIDED_SHADE)).all(dim=-1).any(dim=0).nonzero()
    width = with_schedule.shape[1]
    assert shaded.min() < 0.2 * width and shaded.max() > 0.6 * width
    assert not ((shaded > 0.3 * width) & (shaded < 0.5 * width)).any()


def test_unguided_runs_are_the_steps_at_cfg_one():
    from delayed_negative.render.guidance_marks import cfg_values, unguided_runs

    nan = float("nan")
    assert unguided_runs([1.0, 1.0, 7.0, nan, 1.0, 6.0, 1.0]) == [(0, 1), (4, 4), (6, 6)]
    assert unguided_runs([7.0, 6.5]) == []
    assert cfg_values(None) == [] and cfg_values(torch.full((4,), nan)) == []
