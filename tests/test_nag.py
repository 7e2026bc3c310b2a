"""The delayed negative at cfg 1 through normalized attention guidance (issue 21), on a UNet.

References, none of them the pack's own output:
- the NAG formula written out from ComfyUI's hooks (nag_reference.py): the positive evaluated
  alone by the stock KSampler at cfg 1, every cross-attention guided by the negative's attention
  computed from the same queries. The pack gets there another way (the negative batched beside
  the positive, both given the guided output), so the two agree to float rounding: the batch of
  two runs other matrix-multiply paths than the batch of one (within 1 % of NAG's effect here);
- before the start: the stock KSampler Advanced at cfg 1 (the positive alone), bit for bit;
- which steps evaluate the negative: the sampler's own loop counter (instrumented.py), for every
  sampler of the host.
"""

import logging

import comfy.samplers
import pytest
import torch
from devtools.models.tiny_models import tiny_sd15, tiny_sdxl

import model_stacks
import nag_reference
import stock
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.delayed_negative import DelayedNegativeGuiderNode, DelayedNegativeKSampler, \
    DelayedNegativeKSamplerAdvanced
from delayed_negative.nodes.guidance_schedule import DelayedNegativeGuidanceSchedule
from delayed_negative.nodes.nag import DelayedNegativeNAG
from delayed_negative.nodes.sweep import DelayedNegativeSweep
from delayed_negative.samplers.ksampler import delayed_negative_ksampler, full_schedule
from delayed_negative.samplers.nag import NAGSettings
from delayed_negative.samplers.negative_window import NegativeTiming
from instrumented import instrument

SEED, STEPS = 3, 6
NAG = NAGSettings(5.0, 1.5, 0.5)  # ComfyUI's NAGuidance defaults


@pytest.fixture(scope="module")
def sd15():
    return tiny_sd15()


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return {name: torch.randn(1, 77, 768, generator=generator) for name in ("positive", "negative", "long")}


def conds(prompts):
    return {name: [[tensor, {}]] for name, tensor in prompts.items()}


def nag_ksampler(model, prompts, start, nag=NAG, negative="negative", **inputs):
    c = conds(prompts)
    settings = dict(before_negative="empty prompt") | inputs
    return DelayedNegativeKSampler.execute(model, SEED, STEPS, 1.0, "euler", "normal", c["positive"], c[negative],
                                           stock.empty_latent(), 1.0, start, -1, "step", nag=nag,
                                           **settings)[0]["samples"]


def stock_cfg1(model, prompts):
    c = conds(prompts)
    return stock.ksampler(model, SEED, STEPS, 1.0, "euler", "normal", c["positive"], c["negative"],
                          stock.empty_latent())["samples"]


# 1. What NAG computes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("start", [0, 3])
def test_unet_nag_equals_the_formula_written_out_from_hooks(sd15, prompts, start):
    sigmas = full_schedule(sd15, STEPS, "euler", "normal")
    reference_model = nag_reference.unet_with_reference_nag(sd15, prompts["negative"], NAG.scale, NAG.tau,
                                                            NAG.alpha, from_sigma=float(sigmas[start]))
    reference = stock_cfg1(reference_model, prompts)
    effect = (reference - stock_cfg1(sd15, prompts)).abs().max()
    assert effect > 2e-5 * reference.abs().max(), "NAG must visibly change this model's latent, else the comparison proves nothing"
    assert (nag_ksampler(sd15, prompts, start) - reference).abs().max() < 0.01 * effect


def test_sdxl_nag_equals_the_formula_written_out_from_hooks():
    """SDXL: two transformers per block, the middle block too; both prompts with one pooled vector, so
    that the only difference between the branches is the text the cross-attention reads."""
    model = tiny_sdxl()
    generator = torch.Generator().manual_seed(0)
    context = {name: torch.randn(1, 77, 2048, generator=generator) for name in ("positive", "negative")}
    pooled = torch.randn(1, 1280, generator=generator)
    c = {name: [[tensor, {"pooled_output": pooled, "width": 64, "height": 64, "target_width": 64,
                          "target_height": 64}]] for name, tensor in context.items()}
    reference_model = nag_reference.unet_with_reference_nag(model, context["negative"], NAG.scale, NAG.tau, NAG.alpha)
    latent = stock.empty_latent()
    reference = stock.ksampler(reference_model, SEED, 4, 1.0, "euler", "normal", c["positive"], c["negative"],
                               latent)["samples"]
    plain = stock.ksampler(model, SEED, 4, 1.0, "euler", "normal", c["positive"], c["negative"], latent)["samples"]
    ours = DelayedNegativeKSampler.execute(model, SEED, 4, 1.0, "euler", "normal", c["positive"], c["negative"],
                                           latent, 1.0, 0, -1, "step", "no guidance", nag=NAG)[0]["samples"]
    effect = (reference - plain).abs().max()
    assert effect > 1e-5 * reference.abs().max()
    assert (ours - reference).abs().max() < 0.01 * effect


def rounding_apart(ours, reference) -> bool:
    """Equal up to float32 rounding (a few ulps of the latent's largest value)."""
    return bool((ours - reference).abs().max() <= 1e-6 * reference.abs().max())


def test_the_settings_act_as_the_formula_says(sd15, prompts):
    plain = stock_cfg1(sd15, prompts)
    assert rounding_apart(nag_ksampler(sd15, prompts, 0, NAGSettings(1.0, 1.5, 0.5)), plain)  # scale 1: z+
    assert rounding_apart(nag_ksampler(sd15, prompts, 0, NAGSettings(5.0, 1.5, 0.0)), plain)  # alpha 0: z+
    weak = (nag_ksampler(sd15, prompts, 0, NAGSettings(2.0, 1.5, 0.5)) - plain).abs().max()
    strong = (nag_ksampler(sd15, prompts, 0, NAGSettings(8.0, 3.0, 0.5)) - plain).abs().max()
    assert 1e-4 * plain.abs().max() < weak < strong


def test_a_negative_equal_to_the_positive_changes_nothing(sd15, prompts):
    # z- = z+: the guided attention is z+ (scale s - (s - 1) = 1), whatever the settings.
    assert rounding_apart(nag_ksampler(sd15, prompts, 0, negative="positive"), stock_cfg1(sd15, prompts))


# 2. When: the positive alone before the start, the negative from it on, for every sampler ---------------------

def test_the_steps_before_the_start_are_the_stock_positive_alone_bit_for_bit(sd15, prompts):
    c = conds(prompts)
    latent = stock.empty_latent()
    ours = DelayedNegativeKSamplerAdvanced.execute(sd15, "enable", SEED, STEPS, 1.0, "euler", "normal", c["positive"],
                                                   c["negative"], latent, 0, 3, "enable", 3, -1, "step",
                                                   "empty prompt", nag=NAG)[0]
    reference = stock.ksampler_advanced(sd15, "enable", SEED, STEPS, 1.0, "euler", "normal", c["positive"],
                                        c["negative"], latent, 0, 3, "enable")
    assert torch.equal(ours["samples"], reference["samples"])


def test_a_start_past_the_last_step_is_the_positive_alone_and_says_so(sd15, prompts, caplog):
    with caplog.at_level(logging.WARNING, logger="delayed_negative"):
        never = nag_ksampler(sd15, prompts, STEPS)
    assert torch.equal(never, stock_cfg1(sd15, prompts))
    assert any("never acts" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("sampler", comfy.samplers.KSampler.SAMPLERS)
def test_every_sampler_evaluates_the_negative_exactly_from_the_start_step(sd15, prompts, sampler):
    log = []
    c = conds(prompts)
    delayed_negative_ksampler(instrument(sd15, prompts, log), 7, 8, 1.0, sampler, "karras", c["positive"],
                              c["negative"], {"samples": torch.zeros(1, 4, 8, 8)}, NegativeTiming(3), nag=NAG)
    assert log, "the model was never evaluated"
    if sampler in ("dpm_fast", "dpm_adaptive"):  # their own grid: the documented fallback is by sigma
        start_sigma = float(full_schedule(sd15, 8, sampler, "karras")[3])
        wrong = [e for e in log if (e.uncond == "negative") != (e.sigma <= start_sigma * (1 + 1e-5))]
    else:
        wrong = [e for e in log if (e.uncond == "negative") != (e.sampler_step >= 3)]
    assert not wrong, f"{sampler}: evaluations on the wrong side of step 3: {wrong[:4]}"
    # The positive alone before the start (CFG++ samplers read an unconditional prediction: they get the positive's).
    assert {e.uncond for e in log} <= {"negative", None, "positive"}
    assert any(e.uncond == "negative" for e in log) and any(e.uncond != "negative" for e in log)


# 3. The other forms: Advanced passes, the guider, the sweep, the automatic start, the maps --------------------

def test_two_advanced_passes_equal_one_run(sd15, prompts):
    c = conds(prompts)
    latent = stock.empty_latent()
    first = DelayedNegativeKSamplerAdvanced.execute(sd15, "enable", SEED, STEPS, 1.0, "euler", "normal",
                                                    c["positive"], c["negative"], latent, 0, 2, "enable", 3, -1,
                                                    "step", "empty prompt", nag=NAG)[0]
    second = DelayedNegativeKSamplerAdvanced.execute(sd15, "disable", SEED, STEPS, 1.0, "euler", "normal",
                                                     c["positive"], c["negative"], first, 2, 10000, "disable", 3,
                                                     -1, "step", "empty prompt", nag=NAG)[0]
    assert (second["samples"] - nag_ksampler(sd15, prompts, 3)).abs().max() < 1e-4


def test_the_guider_with_the_stock_custom_sampler_equals_the_node(sd15, prompts):
    from comfy_extras import nodes_custom_sampler as custom

    c = conds(prompts)
    guider = DelayedNegativeGuiderNode.execute(sd15, c["positive"], c["negative"], 1.0, 3, -1, "step",
                                               "no guidance", nag=NAG)[0]
    sigmas = custom.BasicScheduler().execute(sd15, "normal", STEPS, 1.0)[0]
    noise = custom.RandomNoise().execute(SEED)[0]
    sampler = custom.KSamplerSelect().execute("euler")[0]
    out = custom.SamplerCustomAdvanced().execute(noise, guider, sampler, sigmas, stock.empty_latent())[0]
    assert torch.equal(out["samples"], nag_ksampler(sd15, prompts, 3))


def test_the_sweep_gives_each_start_its_own_run(sd15, prompts, checkpoint):
    _model, _clip, vae = checkpoint
    c = conds(prompts)
    latents = DelayedNegativeSweep.execute(sd15, SEED, STEPS, 1.0, "euler", "normal", c["positive"], c["negative"],
                                           stock.empty_latent(), 1.0, "0, 3, never", "step", "empty prompt", vae, 0,
                                           nag=NAG)[0]["samples"]
    for index, start in enumerate((0, 3, STEPS)):
        assert torch.equal(latents[index:index + 1], nag_ksampler(sd15, prompts, start))


def test_the_automatic_start_at_cfg1_equals_a_fixed_start_at_the_step_it_picks(sd15, prompts):
    c = conds(prompts)
    auto = DelayedNegativeKSampler.execute(sd15, SEED, STEPS, 1.0, "euler", "normal", c["positive"], c["negative"],
                                           stock.empty_latent(), 1.0, 0, -1, "auto", "empty prompt", nag=NAG)
    picked = auto[1]
    assert 0 < picked < STEPS
    assert torch.equal(auto[0]["samples"], nag_ksampler(sd15, prompts, picked))


def test_the_maps_show_the_negative_in_its_branch_from_the_start(sd15, prompts):
    recording = AttentionRecording({"positive": [("first", [1])], "negative": [("first", [1])]}, None)
    c = conds(prompts)
    delayed_negative_ksampler(record_attention(sd15, recording), SEED, STEPS, 1.0, "euler", "normal",
                              c["positive"], c["negative"], stock.empty_latent(), NegativeTiming(3), nag=NAG)
    present = ~recording.snapshot().strength()[:, :, 0].isnan()
    by_prompt = {track.prompt: present[:, index] for index, track in enumerate(recording.tracks)}
    assert torch.equal(by_prompt["negative"], torch.arange(STEPS) >= 3)
    assert by_prompt["positive"].all()


# 4. What a user gets wrong: a clear message, and nothing sampled ---------------------------------------------

def sampler_inputs(prompts, cfg=1.0, **inputs):
    c = conds(prompts)
    return dict(seed=SEED, steps=STEPS, cfg=cfg, sampler_name="euler", scheduler="normal", positive=c["positive"],
                negative=c["negative"], latent_image=stock.empty_latent(), denoise=1.0, negative_start=3,
                negative_end=-1, timing_unit="step", before_negative="empty prompt", nag=NAG) | inputs


@pytest.mark.parametrize("inputs, words", [
    ({"cfg": 5.0}, "Set cfg to 1"),
    ({"before_negative": "early conditioning"}, "evaluate the positive alone"),
    ({"negative_start": 4, "negative_end": 2}, "must come after negative_start"),
])
def test_bad_settings_say_what_to_change(sd15, prompts, inputs, words):
    with pytest.raises(ValueError, match=words):
        DelayedNegativeKSampler.execute(sd15, **sampler_inputs(prompts, **inputs))


def test_a_guidance_schedule_with_nag_says_what_to_change(sd15, prompts):
    schedule = DelayedNegativeGuidanceSchedule.execute("constant", "", 8.0, 8.0, 0, -1, 0, 0.0, -1.0, "step")[0]
    with pytest.raises(ValueError, match="Disconnect the guidance schedule"):
        DelayedNegativeKSampler.execute(sd15, **sampler_inputs(prompts, guidance_schedule=schedule))


def test_nag_settings_out_of_range_say_what_they_do():
    for settings, words in (((0.5, 1.5, 0.5), "towards the negative"), ((5.0, 0.5, 0.5), "1 or more"),
                            ((5.0, 1.5, 1.5), "from 0")):
        with pytest.raises(ValueError, match=words):
            DelayedNegativeNAG.execute(*settings)


def test_cfg1_without_nag_points_to_it(sd15, prompts):
    with pytest.raises(ValueError, match="NAG Settings"):
        DelayedNegativeKSampler.execute(sd15, **sampler_inputs(prompts, nag=None))


def test_prompts_comfyui_cannot_batch_together_say_why(sd15, prompts):
    # 77 tokens against 462: ComfyUI stacks conditionings whose lengths are at most 4x apart, so the two
    # branches run apart and NAG has no pair to compare.
    long = {**prompts, "negative": prompts["long"].repeat(1, 6, 1)}
    with pytest.raises(ValueError, match="in one batch"):
        nag_ksampler(sd15, long, 0)


def test_the_input_model_and_conditioning_are_left_as_they_were(sd15, prompts):
    options = repr(sd15.model_options)
    c = conds(prompts)
    before = [tensor.clone() for tensor in (c["positive"][0][0], c["negative"][0][0])]
    DelayedNegativeKSampler.execute(sd15, **sampler_inputs(prompts, positive=c["positive"], negative=c["negative"]))
    assert repr(sd15.model_options) == options
    assert torch.equal(before[0], c["positive"][0][0]) and torch.equal(before[1], c["negative"][0][0])


# 5. Another pack's patch at the same point keeps working ---------------------------------------------------

@pytest.mark.parametrize("key", ["3-part", "2-part"])
def test_another_packs_cross_attention_patch_keeps_working_under_nag(sd15, prompts, key):
    calls = []

    def other_pack(q, k, v, extra_options):
        calls.append(tuple(extra_options["cond_or_uncond"]))
        return model_stacks.ipadapter_like(q, k, v, extra_options)

    patched = sd15.clone()
    patched.set_model_attn2_replace(other_pack, "input", 1, transformer_index=0 if key == "3-part" else None)
    with_other = nag_ksampler(patched, prompts, 3)
    assert calls and (0, 1) in [tuple(sorted(call)) for call in calls], "the other patch must see NAG's batch"
    assert len(calls) == STEPS, "the other patch runs once per evaluation on its layer"
    assert not torch.equal(with_other, nag_ksampler(sd15, prompts, 3))
    # Before the start it is exactly the stock cfg-1 run on the patched model.
    c = conds(prompts)
    assert torch.equal(
        DelayedNegativeKSamplerAdvanced.execute(patched, "enable", SEED, STEPS, 1.0, "euler", "normal",
                                                c["positive"], c["negative"], stock.empty_latent(), 0, 3, "enable", 3,
                                                -1, "step", "empty prompt", nag=NAG)[0]["samples"],
        stock.ksampler_advanced(patched, "enable", SEED, STEPS, 1.0, "euler", "normal", c["positive"], c["negative"],
                                stock.empty_latent(), 0, 3, "enable")["samples"])
