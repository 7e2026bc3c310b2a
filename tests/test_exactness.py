"""The delayed negative proven against references built from ComfyUI's stock nodes,
on the generated SD1.5-architecture checkpoint loaded by the stock CheckpointLoaderSimple.
"""

import pytest
import torch

from comfy_extras import nodes_custom_sampler as custom

import stock
from delayed_negative.nodes.delayed_negative import (DelayedNegativeGuiderNode, DelayedNegativeKSampler,
                                                     DelayedNegativeKSamplerAdvanced)

SEED, STEPS, CFG = 42, 8, 6.5


@pytest.fixture(scope="module")
def sd15(checkpoint):
    model, clip, _vae = checkpoint
    return {
        "model": model, "clip": clip,
        "positive": stock.encode(clip, "portrait photo of a man"),
        "negative": stock.encode(clip, "mustache"),
        "empty": stock.encode(clip, ""),
        "latent": stock.empty_latent(64, 64),
    }


def delayed(sd15, sampler, scheduler, start, denoise=1.0, before="empty prompt", unit="step", end=-1.0):
    return DelayedNegativeKSampler.execute(
        sd15["model"], SEED, STEPS, CFG, sampler, scheduler, sd15["positive"], sd15["negative"], sd15["latent"],
        denoise, start, end, unit, before, sd15["clip"], None).result[0]["samples"]


def delayed_advanced(sd15, sampler, scheduler, start, latent, add_noise, first, last, leftover):
    return DelayedNegativeKSamplerAdvanced.execute(
        sd15["model"], add_noise, SEED, STEPS, CFG, sampler, scheduler, sd15["positive"], sd15["negative"], latent,
        first, last, leftover, start, -1.0, "step", "empty prompt", sd15["clip"], None).result[0]


def stock_latent(sd15, sampler, scheduler, negative, denoise=1.0):
    return stock.ksampler(sd15["model"], SEED, STEPS, CFG, sampler, scheduler, sd15["positive"], negative,
                          sd15["latent"], denoise)["samples"]


@pytest.mark.parametrize("sampler, scheduler, denoise", [
    ("euler", "normal", 1.0), ("heun", "karras", 1.0), ("dpmpp_2m_sde", "exponential", 1.0),
    ("uni_pc", "beta", 1.0), ("euler_ancestral", "simple", 0.6),
])
def test_start_zero_is_bit_identical_to_the_stock_ksampler(sd15, sampler, scheduler, denoise):
    expected = stock_latent(sd15, sampler, scheduler, sd15["negative"], denoise)
    assert torch.equal(delayed(sd15, sampler, scheduler, 0, denoise), expected)


@pytest.mark.parametrize("sampler, scheduler", [("euler", "normal"), ("dpmpp_sde", "karras"), ("dpm_2", "kl_optimal")])
@pytest.mark.parametrize("start", [STEPS, STEPS + 5])
def test_start_at_or_past_the_last_step_is_the_stock_ksampler_with_an_empty_negative(sd15, sampler, scheduler, start):
    expected = stock_latent(sd15, sampler, scheduler, sd15["empty"])
    assert torch.equal(delayed(sd15, sampler, scheduler, start), expected)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
@pytest.mark.parametrize("scheduler", ["normal", "karras"])
@pytest.mark.parametrize("start", [2, 5])
def test_start_k_equals_two_stock_passes_switching_negative_at_k(sd15, sampler, scheduler, start):
    first = stock.ksampler_advanced(sd15["model"], "enable", SEED, STEPS, CFG, sampler, scheduler, sd15["positive"],
                                    sd15["empty"], sd15["latent"], 0, start, "enable")
    reference = stock.ksampler_advanced(sd15["model"], "disable", SEED, STEPS, CFG, sampler, scheduler,
                                        sd15["positive"], sd15["negative"], first, start, 10000, "disable")["samples"]
    result = delayed(sd15, sampler, scheduler, start)
    # The stock two-pass reference scales the latent out of and back into the model's space
    # between its passes (x / 0.18215 * 0.18215), so it can differ in the last float bits.
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(result, stock_latent(sd15, sampler, scheduler, sd15["negative"]), atol=1e-2)
    assert not torch.allclose(result, stock_latent(sd15, sampler, scheduler, sd15["empty"]), atol=1e-2)


@pytest.mark.parametrize("split", [3, 6])
def test_advanced_split_in_two_passes_switches_at_the_same_step_as_one_pass(sd15, split):
    start = 4
    one_pass = delayed_advanced(sd15, "euler", "karras", start, sd15["latent"], "enable", 0, 10000, "disable")
    first = delayed_advanced(sd15, "euler", "karras", start, sd15["latent"], "enable", 0, split, "enable")
    second = delayed_advanced(sd15, "euler", "karras", start, first, "disable", split, 10000, "disable")
    torch.testing.assert_close(second["samples"], one_pass["samples"], rtol=1e-4, atol=1e-3)
    # Had the second pass counted its steps from its own start, the switch would move with it.
    shifted = delayed_advanced(sd15, "euler", "karras", split + start, first, "disable", split, 10000, "disable")
    assert not torch.allclose(shifted["samples"], one_pass["samples"], atol=1e-2)


@pytest.mark.parametrize("sampler, scheduler, start", [("euler", "karras", 3), ("heun", "normal", 5),
                                                       ("dpmpp_2m", "exponential", 2)])
def test_guider_gives_the_same_latent_as_the_ksampler_node(sd15, sampler, scheduler, start):
    guider = DelayedNegativeGuiderNode.execute(sd15["model"], sd15["positive"], sd15["negative"], CFG, start, -1.0,
                                               "step", "empty prompt", sd15["clip"], None).result[0]
    noise = custom.RandomNoise.execute(SEED).result[0]
    sampler_object = custom.KSamplerSelect.execute(sampler).result[0]
    sigmas = custom.BasicScheduler.execute(sd15["model"], scheduler, STEPS, 1.0).result[0]
    out = custom.SamplerCustomAdvanced.execute(noise, guider, sampler_object, sigmas, sd15["latent"]).result[0]
    assert torch.equal(out["samples"], delayed(sd15, sampler, scheduler, start))


def test_fraction_and_sigma_units_pick_the_same_step(sd15):
    from delayed_negative.samplers.ksampler import full_schedule

    sigmas = full_schedule(sd15["model"], STEPS, "euler", "karras")
    by_step = delayed(sd15, "euler", "karras", 3)
    assert torch.equal(delayed(sd15, "euler", "karras", 3 / STEPS, unit="fraction of steps"), by_step)
    assert torch.equal(delayed(sd15, "euler", "karras", float(sigmas[3]), unit="sigma"), by_step)
    assert not torch.equal(delayed(sd15, "euler", "karras", 4), by_step)


def test_no_guidance_before_the_negative_equals_cfg_one_then_negative(sd15):
    start = 4
    first = stock.ksampler_advanced(sd15["model"], "enable", SEED, STEPS, 1.0, "euler", "normal", sd15["positive"],
                                    sd15["negative"], sd15["latent"], 0, start, "enable")
    reference = stock.ksampler_advanced(sd15["model"], "disable", SEED, STEPS, CFG, "euler", "normal",
                                        sd15["positive"], sd15["negative"], first, start, 10000, "disable")["samples"]
    result = delayed(sd15, "euler", "normal", start, before="no guidance")
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)


def test_guidance_window_turns_the_negative_off_again(sd15):
    # Negative on steps 2..4 only: empty, negative, then empty again (three stock passes).
    model, positive = sd15["model"], sd15["positive"]
    passes = [(0, 2, sd15["empty"]), (2, 5, sd15["negative"]), (5, 10000, sd15["empty"])]
    latent, add_noise = sd15["latent"], "enable"
    for first, last, negative in passes:
        latent = stock.ksampler_advanced(model, add_noise, SEED, STEPS, CFG, "euler", "normal", positive, negative,
                                         latent, first, last, "enable" if last < STEPS else "disable")
        add_noise = "disable"
    result = delayed(sd15, "euler", "normal", 2, end=5)
    torch.testing.assert_close(result, latent["samples"], rtol=1e-4, atol=1e-3)
