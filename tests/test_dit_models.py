"""The delayed negative on the DiT families people sample today: SD3.x, Flux architecture with
real CFG, Qwen-Image and Wan 2.1 video, each a small in-memory model of ComfyUI's own classes
(devtools/models/tiny_dit_models.py) with its own flow-matching model sampling and latent format.

The references are ComfyUI's stock KSampler, KSampler Advanced and SamplerCustomAdvanced with
the stock CFGGuider path; the step of each evaluation comes from the sampler's own loop
(tests/instrumented.py). Conditioning tensors are random ones of each family's text width.
"""

import nodes
import pytest
import torch
from comfy_extras import nodes_custom_sampler as custom

import stock
from delayed_negative.nodes.delayed_negative import DelayedNegativeGuiderNode, DelayedNegativeKSampler
from instrumented import instrument
from devtools.models.tiny_dit_models import FAMILIES, tiny_flux

SEED, STEPS, CFG, START = 7, 6, 4.0, 2


@pytest.fixture(scope="module", params=list(FAMILIES), ids=list(FAMILIES))
def family(request):
    spec = FAMILIES[request.param]
    generator = torch.Generator().manual_seed(0)
    prompts = {name: spec.conditioning(generator) for name in ("positive", "negative", "empty")}
    return {"model": spec.build(), "latent": {"samples": torch.zeros(spec.latent_shape)}, **prompts}


def delayed(family, sampler, scheduler, start, model=None):
    return DelayedNegativeKSampler.execute(
        model or family["model"], SEED, STEPS, CFG, sampler, scheduler, family["positive"], family["negative"],
        family["latent"], 1.0, start, -1.0, "step", "early conditioning", None, family["empty"]).result[0]["samples"]


def stock_latent(family, sampler, scheduler, negative):
    return nodes.KSampler().sample(family["model"], SEED, STEPS, CFG, sampler, scheduler, family["positive"],
                                   negative, family["latent"])[0]["samples"]


@pytest.mark.parametrize("sampler, scheduler", [("euler", "simple"), ("dpmpp_2m_sde", "beta")])
def test_start_zero_is_the_stock_ksampler_bit_for_bit(family, sampler, scheduler):
    expected = stock_latent(family, sampler, scheduler, family["negative"])
    assert torch.equal(delayed(family, sampler, scheduler, 0), expected)


def test_start_at_the_last_step_is_the_stock_ksampler_with_the_early_conditioning(family):
    expected = stock_latent(family, "heun", "simple", family["empty"])
    assert torch.equal(delayed(family, "heun", "simple", STEPS), expected)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_start_k_equals_two_stock_passes(family, sampler):
    model, positive = family["model"], family["positive"]
    first = stock.ksampler_advanced(model, "enable", SEED, STEPS, CFG, sampler, "simple", positive, family["empty"],
                                    family["latent"], 0, START, "enable")
    reference = stock.ksampler_advanced(model, "disable", SEED, STEPS, CFG, sampler, "simple", positive,
                                        family["negative"], first, START, 10000, "disable")["samples"]
    result = delayed(family, sampler, "simple", START)
    # Between the stock passes the latent leaves and re-enters the model's space (scale and shift),
    # so the match is to float precision. Random weights let the prompt move the latent only a
    # little: the switch at START must still be far nearer the reference than a switch elsewhere.
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-4)
    error = (result - reference).abs().max()
    for other_start in (START - 1, START + 1):
        assert (delayed(family, sampler, "simple", other_start) - reference).abs().max() > 10 * error


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m_sde", "uni_pc", "dpm_2_ancestral"])
def test_every_evaluation_switches_on_its_own_step(family, sampler):
    embeddings = {name: family[name][0][0] for name in ("positive", "negative", "empty")}
    log = []
    delayed(family, sampler, "simple", START, model=instrument(family["model"], embeddings, log))
    assert log and all(e.sampler_step is not None for e in log)
    wrong = [(e.sampler_step, e.uncond) for e in log if e.uncond != ("negative" if e.sampler_step >= START else "empty")]
    assert not wrong, f"evaluations on the wrong side of step {START}: {wrong}"


def test_the_guider_gives_the_node_s_latent(family):
    guider = DelayedNegativeGuiderNode.execute(family["model"], family["positive"], family["negative"], CFG, START,
                                               -1.0, "step", "early conditioning", None, family["empty"]).result[0]
    sigmas = custom.BasicScheduler.execute(family["model"], "simple", STEPS, 1.0).result[0]
    out = custom.SamplerCustomAdvanced.execute(custom.RandomNoise.execute(SEED).result[0], guider,
                                               custom.KSamplerSelect.execute("euler").result[0], sigmas,
                                               family["latent"]).result[0]
    assert torch.equal(out["samples"], delayed(family, "euler", "simple", START))


def test_a_guidance_distilled_flux_at_cfg_1_is_named_and_the_negative_s_uselessness_said():
    generator = torch.Generator().manual_seed(0)
    spec = FAMILIES["flux"]
    positive, negative = spec.conditioning(generator), spec.conditioning(generator)
    latent = {"samples": torch.zeros(spec.latent_shape)}
    for model, said in ((tiny_flux(guidance_embed=True), "this Flux model is guidance-distilled"),
                        (tiny_flux(), r"a negative prompt \(delayed or not\) does nothing")):
        with pytest.raises(ValueError, match=said):
            DelayedNegativeKSampler.execute(model, SEED, 2, 1.0, "euler", "simple", positive, negative, latent, 1.0,
                                            1, -1.0, "step", "early conditioning", None, positive)
    out = DelayedNegativeKSampler.execute(tiny_flux(guidance_embed=True), SEED, 2, 3.0, "euler", "simple", positive,
                                          negative, latent, 1.0, 1, -1.0, "step", "early conditioning", None,
                                          positive).result[0]["samples"]
    assert out.isfinite().all()  # above cfg 1 a distilled Flux samples with the negative like any model
