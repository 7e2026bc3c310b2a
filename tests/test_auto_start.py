"""timing_unit 'auto': the negative starts at a step the pack picks while sampling.

On the toy portraits model (a trained SD1.5-architecture checkpoint through the stock loader and
CLIP Text Encode, whose attention to "glasses" rises as glasses form):
- the picked step is a whole step: the result equals KSampler (Delayed Negative) with that
  fixed start bit for bit, for first-order, second-order, ancestral, SDE and multistep samplers,
  for the guider with SamplerCustomAdvanced and for two passes of KSampler Advanced; and it
  equals the stock KSampler Advanced in two passes (empty prompt, then the negative) for euler;
- the picked step follows the documented rule from the strengths the run measured, within the
  earliest and latest allowed steps, from steps that had finished before it;
- the signal is the negative's share of one softmax over both prompts' keys, and each step's
  strength is measured on exactly that, rebuilt from hooks on the model's own to_q / to_k (on the
  generated checkpoint, whose cross-attention runs at two resolutions);
- bad settings and models without cross-attention get a clear message; nothing given is changed.
"""

import math

import pytest
import stock
import torch
from attention_hooks import at_latent_size, hook_cross_attention, word_probability
from comfy_extras import nodes_custom_sampler as custom
from delayed_negative.attention.negative_watch import negative_share
from delayed_negative.nodes.auto_start import DelayedNegativeAutoStart
from delayed_negative.nodes.delayed_negative import (
    DelayedNegativeGuiderNode,
    DelayedNegativeKSampler,
    DelayedNegativeKSamplerAdvanced,
)
from delayed_negative.nodes.sweep import DelayedNegativeSweep
from delayed_negative.samplers.auto_start import AutoStart, CriticalStepFinder, strength
from delayed_negative.samplers.ksampler import AUTO_STATE_KEY
from delayed_negative.samplers.negative_window import fraction_to_step
from instrumented import instrument
from devtools.models.tiny_dit_models import tiny_sd3
from devtools.toy_model.experiments import load_toy_checkpoint

SEED, STEPS, CFG = 5, 12, 5.0
SAMPLERS = ["euler", "heun", "dpm_2_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "uni_pc", "lms", "res_multistep"]


@pytest.fixture(scope="module")
def toy(toy_checkpoint_file):
    model, clip, vae = load_toy_checkpoint()
    return {"model": model, "clip": clip, "vae": vae,
            "positive": stock.encode(clip, "portrait photo of a man with glasses"),
            "negative": stock.encode(clip, "glasses"), "empty": stock.encode(clip, ""),
            "latent": stock.empty_latent(64, 64, batch_size=2)}


def ksampler(toy, sampler, start, unit, auto=None, scheduler="karras"):
    """(LATENT, reported start) of KSampler (Delayed Negative)."""
    return DelayedNegativeKSampler.execute(
        toy["model"], SEED, STEPS, CFG, sampler, scheduler, toy["positive"], toy["negative"], toy["latent"], 1.0,
        start, -1.0, unit, "empty prompt", toy["clip"], None, None, auto).result


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_picked_step_is_a_whole_step(toy, sampler):
    auto, picked = ksampler(toy, sampler, 0, "auto")
    assert 2 <= picked <= 6  # the defaults: earliest 0.1, latest 0.5 of 12 steps, rounded up
    fixed, reported = ksampler(toy, sampler, picked, "step")
    assert reported == picked
    assert torch.equal(auto["samples"], fixed["samples"])


def test_the_picked_step_equals_the_stock_sampler_switching_there(toy):
    auto, picked = ksampler(toy, "euler", 0, "auto", scheduler="normal")
    before = stock.ksampler_advanced(toy["model"], "enable", SEED, STEPS, CFG, "euler", "normal", toy["positive"],
                                     toy["empty"], toy["latent"], 0, picked, "enable")
    after = stock.ksampler_advanced(toy["model"], "disable", SEED, STEPS, CFG, "euler", "normal", toy["positive"],
                                    toy["negative"], before, picked, STEPS, "disable")
    torch.testing.assert_close(auto["samples"], after["samples"], rtol=0, atol=1e-4)
    never = stock.ksampler(toy["model"], SEED, STEPS, CFG, "euler", "normal", toy["positive"], toy["empty"],
                           toy["latent"])
    assert (auto["samples"] - never["samples"]).abs().max() > 1e-2  # the negative did act


def test_the_rule_picks_the_first_step_past_the_threshold(toy):
    """The strengths each run measured, fed to the rule as written in the README, give its step."""
    for settings in (AutoStart(0.5, 0.1, 0.5), AutoStart(0.9, 0.0, 1.0), AutoStart(0.0, 0.1, 0.75),
                     AutoStart(1.0, 0.25, 0.5), AutoStart(1.0, 0.0, 0.5)):
        guider = DelayedNegativeGuiderNode.execute(toy["model"], toy["positive"], toy["negative"], CFG, 0, -1.0,
                                                   "auto", "empty prompt", toy["clip"], None, None,
                                                   settings).result[0]
        run_guider(toy, guider, "euler")
        strengths = guider.finder.strengths
        earliest, latest = math.ceil(settings.earliest * STEPS), math.ceil(settings.latest * STEPS)
        threshold = 0.04 * (1 - settings.sensitivity)
        risen = [step for step in sorted(strengths) if strengths[step] / strengths[0] - 1 >= threshold]
        expected = min(max(risen[0] + 1, earliest), latest) if risen else latest
        assert guider.window.start_step == expected, settings
        # Watched up to the step that decided, which finished before the start: no later step counted.
        assert sorted(strengths) == list(range(max(strengths) + 1)) and max(strengths) < expected


def test_each_steps_strength_is_measured_on_an_explicit_softmax_over_both_prompts_from_hooks(checkpoint):
    """The watch's maps, rebuilt from the model's own to_q / to_k: for every cross-attention call of
    the positive branch, the negative's share of one softmax over the positive's keys and the
    negative's keys past its start token, per head in float64, heads averaged, brought to the
    latent's size bilinearly, averaged over the calls of each step; then each step's strength by
    the README's rule. On the generated checkpoint (the toy model has cross-attention at one
    resolution only): two resolutions, batch 2, a non-square latent, heun's two calls a step."""
    model, clip, _vae = checkpoint
    setup = {"positive": stock.encode(clip, "portrait photo of a man with glasses"),
             "negative": stock.encode(clip, "glasses, blurry"), "empty": stock.encode(clip, ""),
             "model": model, "latent": stock.empty_latent(64, 48, batch_size=2)}
    conds = {name: setup[name][0][0] for name in ("positive", "negative", "empty")}
    log = []
    guider = DelayedNegativeGuiderNode.execute(instrument(model, conds, log), setup["positive"], setup["negative"],
                                               CFG, 0, -1.0, "auto", "empty prompt", clip, None, None,
                                               AutoStart(0.0, 0.0, 1.0)).result[0]
    calls, handles = hook_cross_attention(guider.model_patcher)
    sigmas = custom.BasicScheduler.execute(model, "karras", 4, 1.0).result[0]
    try:
        run_guider(setup, guider, "heun", sigmas)
    finally:
        for handle in handles:
            handle.remove()
    per_evaluation = len(calls) // len(log)
    assert per_evaluation * len(log) == len(calls) and {call.q.shape[1] for call in calls} == {48, 12}
    sums, counts = {}, {}
    for number, evaluation in enumerate(log):
        rows = slice(evaluation.chunks.index(0) * 2, (evaluation.chunks.index(0) + 1) * 2)
        for call in calls[number * per_evaluation:(number + 1) * per_evaluation]:
            with torch.no_grad():
                k_negative = call.to_k(conds["negative"].to(call.k.dtype))[:, 1:].expand(2, -1, -1)
            keys = torch.cat([call.k[rows], k_negative], dim=1)  # one softmax over both prompts
            negative_columns = list(range(call.k.shape[1], keys.shape[1]))
            share = at_latent_size(word_probability(call.q[rows], keys, call.heads, negative_columns), 6, 8)
            sums[evaluation.sampler_step] = sums.get(evaluation.sampler_step, 0) + share
            counts[evaluation.sampler_step] = counts.get(evaluation.sampler_step, 0) + 1
    assert [e.sampler_step for e in log] == [0, 0, 1, 1, 2, 2, 3]  # heun: two calls a step, one on the last
    measured = guider.finder.strengths
    assert sorted(measured) == [0, 1, 2, 3]  # sensitivity 0: never risen 4% on this model, every step watched
    for step, value in measured.items():
        assert value == pytest.approx(strength(sums[step] / counts[step]), rel=1e-5), step
    # Latest 0.5 (step 2) and no rise: the negative starts there, and step 2 itself is no longer watched.
    early = DelayedNegativeGuiderNode.execute(model, setup["positive"], setup["negative"], CFG, 0, -1.0, "auto",
                                              "empty prompt", clip, None, None, AutoStart(0.0, 0.0, 0.5)).result[0]
    run_guider(setup, early, "heun", sigmas)
    assert (early.window.start_step, sorted(early.finder.strengths)) == (2, [0, 1])


def test_a_steps_strength_is_the_batch_mean_of_each_images_top_tenth():
    share = torch.zeros(2, 10, 10)
    share[0].view(-1)[:10] = torch.arange(10.0)  # image 0: top tenth (10 of 100 cells) mean 4.5
    share[1] = 0.25  # image 1: flat
    share[1, 0, 0] = 5.0  # one cell above, nine at 0.25: mean 0.725
    assert strength(share) == pytest.approx((4.5 + 0.725) / 2)


def test_the_allowed_steps_are_fractions_of_the_schedule_rounded_up():
    schedule = torch.linspace(14.6, 0.0, 11)  # ten steps
    finder = CriticalStepFinder(AutoStart(0.5, 0.1, 0.55), schedule)
    assert (finder.steps, finder.earliest, finder.latest) == (10, 1, 6)  # 0.55 x 10 = 5.5 -> step 6
    assert fraction_to_step(0.1, 12) == 2 and fraction_to_step(0.1, 30) == 3 and fraction_to_step(1.0, 7) == 7
    assert finder.state.start_step is None and finder.start_step == 6  # until it picks: the latest allowed
    at_once = CriticalStepFinder(AutoStart(0.5, 0.0, 0.0), schedule)
    assert at_once.state.start_step == 0  # latest 0: the negative from the first step, nothing to watch


def test_the_rule_step_by_step_on_known_maps():
    finder = CriticalStepFinder(AutoStart(0.5, 0.0, 1.0), torch.linspace(14.6, 0.0, 11))  # 2% rise starts it
    flat = torch.full((1, 4, 4), 0.3)
    finder.step_finished(0, None)  # a step with no map (nothing evaluated): nothing learned
    assert finder.state.first_strength is None
    finder.step_finished(0, flat)
    finder.step_finished(1, flat * 1.019)
    assert finder.state.start_step is None and finder.start_step == 10
    finder.step_finished(2, flat * 1.021)
    assert finder.state.start_step == 3
    finder.step_finished(3, flat * 0.5)  # once picked, later steps change nothing
    finder.step_finished(4, None)
    assert finder.state.start_step == 3 and sorted(finder.strengths) == [0, 1, 2]


def run_guider(toy, guider, sampler_name, sigmas=None):
    sigmas = sigmas if sigmas is not None else custom.BasicScheduler.execute(toy["model"], "karras", STEPS,
                                                                              1.0).result[0]
    return custom.SamplerCustomAdvanced.execute(custom.RandomNoise.execute(SEED).result[0], guider,
                                                custom.KSamplerSelect.execute(sampler_name).result[0], sigmas,
                                                toy["latent"]).result[0]


def test_the_guider_picks_a_whole_step_too(toy):
    def guider(start, unit):
        return DelayedNegativeGuiderNode.execute(toy["model"], toy["positive"], toy["negative"], CFG, start, -1.0,
                                                 unit, "empty prompt", toy["clip"]).result[0]

    automatic = guider(0, "auto")
    auto = run_guider(toy, automatic, "dpmpp_2m")
    fixed = run_guider(toy, guider(automatic.window.start_step, "step"), "dpmpp_2m")
    assert torch.equal(auto["samples"], fixed["samples"])


def test_two_passes_carry_the_automatic_start(toy):
    def two_passes(start, unit, split):
        first, first_start = DelayedNegativeKSamplerAdvanced.execute(
            toy["model"], "enable", SEED, STEPS, CFG, "euler", "karras", toy["positive"], toy["negative"],
            toy["latent"], 0, split, "enable", start, -1.0, unit, "empty prompt", toy["clip"]).result
        kept = dict(first)
        second, second_start = DelayedNegativeKSamplerAdvanced.execute(
            toy["model"], "disable", SEED, STEPS, CFG, "euler", "karras", toy["positive"], toy["negative"], first,
            split, STEPS, "disable", start, -1.0, unit, "empty prompt", toy["clip"]).result
        assert first.keys() == kept.keys() and all(first[key] is kept[key] for key in kept)  # input unchanged
        if unit == "auto":  # the second pass carried on from the first: the same first-step strength
            assert second[AUTO_STATE_KEY].first_strength == first[AUTO_STATE_KEY].first_strength
        return first_start, second, second_start

    _, one_pass = ksampler(toy, "euler", 0, "auto")
    for split in (1, one_pass - 1, one_pass + 2):
        first_start, second, second_start = two_passes(0, "auto", split)
        assert second_start == one_pass, split  # the same step as in one pass
        # Known after pass 1 when its steps decided it (its last step decides the next pass's first).
        assert first_start == (one_pass if one_pass <= split else -1), split
        _, fixed, _ = two_passes(one_pass, "step", split)
        assert torch.equal(second["samples"], fixed["samples"]), split


def test_the_sweep_runs_auto_first_and_shares_with_it(toy):
    latents, _, grid = DelayedNegativeSweep.execute(
        toy["model"], SEED, STEPS, CFG, "dpmpp_2m_sde", "karras", toy["positive"], toy["negative"], toy["latent"],
        1.0, "0, auto, 6, never", "step", "empty prompt", toy["vae"], 0, toy["clip"]).result
    _, picked = ksampler(toy, "dpmpp_2m_sde", 0, "auto")
    for index, start in enumerate([0, picked, 6, STEPS]):
        expected, _ = ksampler(toy, "dpmpp_2m_sde", start, "step")
        assert torch.equal(latents["samples"][2 * index:2 * index + 2], expected["samples"]), start
    assert grid.shape[0] == 1


def test_the_signal_is_the_negatives_share_of_one_softmax_over_both_prompts():
    generator = torch.Generator().manual_seed(3)
    heads, dim = 4, 16
    q = torch.randn(2, 30, heads * dim, generator=generator)
    k_positive = torch.randn(2, 77, heads * dim, generator=generator)
    k_negative = torch.randn(1, 76, heads * dim, generator=generator)

    def split(tensor):
        return tensor.reshape(tensor.shape[0], -1, heads, dim).transpose(1, 2)

    keys = torch.cat([split(k_positive), split(k_negative).expand(2, -1, -1, -1)], dim=2)
    probabilities = (split(q) @ keys.transpose(-1, -2) / math.sqrt(dim)).softmax(dim=-1)
    expected = probabilities[..., 77:].sum(dim=-1).mean(dim=1)
    torch.testing.assert_close(negative_share(q, k_positive, k_negative, heads), expected)


def test_bad_settings_say_what_to_change(toy):
    with pytest.raises(ValueError, match="negative_end is 8, but with timing_unit 'auto'"):
        DelayedNegativeKSampler.execute(toy["model"], SEED, STEPS, CFG, "euler", "normal", toy["positive"],
                                        toy["negative"], toy["latent"], 1.0, 0, 8, "auto", "empty prompt",
                                        toy["clip"])
    with pytest.raises(ValueError, match="earliest .* and latest .* are fractions"):
        DelayedNegativeAutoStart.execute(0.5, 0.6, 0.3)
    with pytest.raises(ValueError, match="'auto' is listed twice"):
        DelayedNegativeSweep.execute(toy["model"], SEED, STEPS, CFG, "euler", "normal", toy["positive"],
                                     toy["negative"], toy["latent"], 1.0, "auto, 3, auto", "step", "empty prompt",
                                     toy["vae"], 0, toy["clip"])
    with pytest.raises(ValueError, match="starts: 40 is past the last of the 12 steps"):
        DelayedNegativeSweep.execute(toy["model"], SEED, STEPS, CFG, "euler", "normal", toy["positive"],
                                     toy["negative"], toy["latent"], 1.0, "0, 40", "step", "empty prompt",
                                     toy["vae"], 0, toy["clip"])


def test_a_model_without_cross_attention_gets_a_clear_message():
    model = tiny_sd3()
    conditioning = [[torch.zeros(1, 8, 48), {"pooled_output": torch.zeros(1, 32)}]]
    options = dict(model.model_options)
    with pytest.raises(ValueError, match="timing_unit 'auto' watches the UNet's cross-attention"):
        DelayedNegativeKSampler.execute(model, SEED, 4, CFG, "euler", "normal", conditioning, conditioning,
                                        {"samples": torch.zeros(1, 16, 8, 8)}, 1.0, 0, -1.0, "auto",
                                        "early conditioning", None, conditioning)
    assert model.model_options == options


def test_the_model_and_the_settings_are_not_changed(toy):
    before = repr(toy["model"].model_options)
    settings = AutoStart()
    latent, _ = ksampler(toy, "euler", 0, "auto", settings)
    assert repr(toy["model"].model_options) == before
    assert settings == AutoStart()
    state = latent[AUTO_STATE_KEY]
    CriticalStepFinder(settings, state.schedule, 1, state).choose(9, "a test")
    assert latent[AUTO_STATE_KEY].start_step == state.start_step != 9


def test_a_new_run_from_an_automatic_runs_latent_watches_afresh(toy):
    """A second sampling of the latent (hires fix, img2img) is no second pass: it picks its own step."""
    first, picked = ksampler(toy, "euler", 0, "auto")
    assert first[AUTO_STATE_KEY].start_step == picked
    again = {**toy, "latent": {**first, "samples": toy["latent"]["samples"]}}
    _, picked_again = ksampler(again, "euler", 0, "auto")
    assert picked_again == picked
    settings = AutoStart(1.0, 0.5, 0.75)  # the earliest allowed step is 6: a carried 3 would show
    _, other = ksampler(again, "euler", 0, "auto", settings)
    assert other == 6
