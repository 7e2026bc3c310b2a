"""The delayed negative with what users put between the loader and the sampler (issue 19, sampler half).

For every stack of tests/model_stacks.py (other packs' guidance patches, caches, an attention
backend, LoRAs, hooked conditionings, a ControlNet, other packs' attention patches), on the tiny
SD1.5 model and against ComfyUI's stock samplers on the very same stack:

- the stack changes the stock KSampler's result (else its cells prove nothing);
- negative_start 0: bit-identical to the stock KSampler;
- negative_start K: bit-identical to one stock KSampler run whose negative is the empty prompt
  until step K and the negative from there (ConditioningSetTimestepRange split at a sigma
  between the two steps: euler evaluates once per step, at the step's sigma, so ranges and
  steps agree). One run sees the same evaluations in the same order, so it is the reference
  for stacks that carry something from step to step too. The stack must still act in that run;
- negative_start K against the two stock KSamplerAdvanced passes the node replaces (empty prompt
  over [0, K) with leftover noise, then the negative): equal up to the rounding of the latent's
  scaling between passes, unless the stack's state makes them differ (Stack.state says why);
- the Delayed Negative Guider with the stock SamplerCustomAdvanced: the node's latent, bit for bit.

The ControlNet is a tiny one built from ComfyUI's own comfy.cldm.cldm.ControlNet and loaded by
the stock ControlNetLoader, which does not recognise its size and falls back to a base config
(it logs "no match" and loads it); see model_stacks.tiny_controlnet.

Section 3 holds the two defects this matrix found, fixed since: the empty prompt dropped the
negative's ControlNet before the start, and a cache that answers the guider's evaluations itself
(LazyCache) made the step clock lose count.
"""

import logging

import pytest
import torch

import comfyui_version
import nodes
from comfy_extras import nodes_custom_sampler as custom, nodes_easycache
from devtools.models.tiny_models import tiny_sd15

import model_stacks
import stock
from delayed_negative.nodes.delayed_negative import DelayedNegativeGuiderNode, DelayedNegativeKSampler
from delayed_negative.samplers.ksampler import full_schedule
from instrumented import instrument
from model_stacks import STACKS, Setup

SEED, STEPS, CFG = 11, 6, 5.0
# Step 3 of 6: EasyCache needs two evaluations to learn before it may skip one, so an earlier
# switch would leave it nothing to skip in the runs compared here.
START = 3


@pytest.fixture(scope="module")
def sd15():
    return tiny_sd15()


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return {name: torch.randn(1, 77, 768, generator=generator) for name in ("positive", "negative", "empty")}


@pytest.fixture(scope="module")
def base(sd15, prompts):
    """The setup as it leaves the loaders: random prompt embeddings of SD1.5's width, a 64x64 image."""
    conds = {name: [[tensor, {}]] for name, tensor in prompts.items()}
    return Setup(sd15, conds["positive"], conds["negative"], conds["empty"], stock.empty_latent())


@pytest.fixture(scope="module")
def assets(sd15, checkpoint, tmp_path_factory):
    _model, clip, _vae = checkpoint
    return model_stacks.write_assets(tmp_path_factory.mktemp("stacks"), sd15, clip)


@pytest.fixture(scope="module")
def built(base, assets):
    """stack -> (the setup without the stack, the setup with it), each built once: CLIP encodes are slow."""
    cache = {}

    def setups(stack):
        if stack.name not in cache:
            prepared = stack.prepare(base, assets)
            cache[stack.name] = prepared, stack.patch(prepared, assets)
        return cache[stack.name]

    return setups


@pytest.fixture(scope="module")
def at_start(built):
    """stack -> the node's latent with the stack at negative_start START, computed once for three tests."""
    cache = {}

    def result(stack):
        if stack.name not in cache:
            cache[stack.name] = delayed(built(stack)[1], START)
        return cache[stack.name]

    return result


def cells():
    version = comfyui_version.__version__
    return [pytest.param(stack, id=stack.name,
                         marks=pytest.mark.skipif(stack.absent_on_this_host(), reason=f"not in ComfyUI {version}"))
            for stack in STACKS]


# Runs ------------------------------------------------------------------------------------------------------

def before_negative(setup: Setup):
    """The pack's own empty prompt where the setup has a CLIP, the setup's empty conditioning otherwise."""
    return ("empty prompt", None) if setup.clip is not None else ("early conditioning", setup.empty)


def delayed(setup: Setup, start, sampler="euler"):
    before, early = before_negative(setup)
    return DelayedNegativeKSampler.execute(
        setup.model, SEED, STEPS, CFG, sampler, "normal", setup.positive, setup.negative, setup.latent, 1.0, start,
        -1.0, "step", before, setup.clip, early).result[0]["samples"]


def guider(setup: Setup, start):
    before, early = before_negative(setup)
    delayed_guider = DelayedNegativeGuiderNode.execute(setup.model, setup.positive, setup.negative, CFG, start, -1.0,
                                                       "step", before, setup.clip, early).result[0]
    sigmas = custom.BasicScheduler.execute(setup.model, "normal", STEPS, 1.0).result[0]
    return custom.SamplerCustomAdvanced.execute(custom.RandomNoise.execute(SEED).result[0], delayed_guider,
                                                custom.KSamplerSelect.execute("euler").result[0], sigmas,
                                                setup.latent).result[0]["samples"]


def stock_ksampler(setup: Setup, negative=None):
    return stock.ksampler(setup.model, SEED, STEPS, CFG, "euler", "normal", setup.positive,
                          setup.negative if negative is None else negative, setup.latent)["samples"]


def two_stock_passes(setup: Setup, start, second_model=None):
    """KSamplerAdvanced with the empty prompt over [0, start) keeping the leftover noise, then with the
    negative over [start, STEPS) adding none; both on the setup's model unless `second_model` is given."""
    first = stock.ksampler_advanced(setup.model, "enable", SEED, STEPS, CFG, "euler", "normal", setup.positive,
                                    setup.empty, setup.latent, 0, start, "enable")
    return stock.ksampler_advanced(second_model or setup.model, "disable", SEED, STEPS, CFG, "euler", "normal",
                                   setup.positive, setup.negative, first, start, 10000, "disable")["samples"]


def switch_percent(model, start) -> float:
    """A fraction of the model's timestep range whose sigma lies strictly between steps start-1 and start."""
    sigmas = full_schedule(model, STEPS, "euler", "normal")
    model_sampling = model.get_model_object("model_sampling")
    above, below = float(sigmas[start - 1]), float(sigmas[start])
    target, low, high = (above * below) ** 0.5, 0.0, 1.0
    for _ in range(60):  # percent_to_sigma falls as the percentage rises
        middle = (low + high) / 2
        low, high = (middle, high) if float(model_sampling.percent_to_sigma(middle)) > target else (low, middle)
    assert below < float(model_sampling.percent_to_sigma(high)) < above
    return high


def one_stock_run_switching(setup: Setup, start):
    """The stock KSampler, with the empty prompt as negative until step `start` and the negative from there."""
    percent, ranged = switch_percent(setup.model, start), nodes.ConditioningSetTimestepRange()
    negative = ranged.set_range(setup.empty, 0.0, percent)[0] + ranged.set_range(setup.negative, percent, 1.0)[0]
    return stock_ksampler(setup, negative)


# 1. The matrix ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", cells())
def test_the_stack_changes_the_stock_result(built, stack):
    without, with_stack = built(stack)
    assert not torch.equal(stock_ksampler(with_stack), stock_ksampler(without)), f"{stack.name} changes nothing"


@pytest.mark.parametrize("stack", cells())
def test_start_zero_is_the_stock_ksampler(built, stack):
    _, setup = built(stack)
    assert torch.equal(delayed(setup, 0), stock_ksampler(setup))


@pytest.mark.parametrize("stack", cells())
def test_start_k_is_one_stock_run_switching_at_k(built, at_start, stack):
    without, setup = built(stack)
    result = at_start(stack)
    assert torch.equal(result, one_stock_run_switching(setup, START))
    assert not torch.equal(result, delayed(without, START)), f"{stack.name} does nothing in this run"


@pytest.mark.parametrize("stack", cells())
def test_start_k_against_two_stock_passes(built, at_start, stack):
    _, setup = built(stack)
    result, passes = at_start(stack), two_stock_passes(setup, START)
    if stack.two_passes_differ:
        assert not torch.allclose(result, passes, atol=1e-2), f"expected to differ: {stack.state}"
    else:
        # The stock passes scale the latent out of and back into the model's space between them
        # (x / 0.18215 * 0.18215), so they can differ in the last float bits.
        torch.testing.assert_close(result, passes, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("stack", cells())
def test_guider_is_the_ksampler_node(built, at_start, stack):
    _, setup = built(stack)
    assert torch.equal(guider(setup, START), at_start(stack))


# 2. State across steps -------------------------------------------------------------------------------------

def test_apg_gives_its_running_average_to_the_step_after_the_switch(built, at_start):
    # The two passes above match only because both run on one APG model: an APG model of its own
    # for the second pass starts the running average again at the switch.
    apg = next(stack for stack in STACKS if stack.name == "APG")
    without, setup = built(apg)
    own_apg = apg.patch(without, None).model
    result = at_start(apg)
    assert not torch.allclose(two_stock_passes(setup, START, second_model=own_apg), result, atol=1e-2)
    torch.testing.assert_close(two_stock_passes(setup, START), result, rtol=1e-4, atol=1e-3)


# 3. Defects the matrix found (each failed before its fix) -------------------------------------------------

def test_empty_prompt_keeps_the_controlnet_of_the_negative(base, assets):
    """'empty prompt' puts the empty prompt in the negative's place with what the nodes after the
    negative's encoder added (here its ControlNet). The stock reference: the empty prompt and the
    negative, each on its side of the switch (ConditioningSetTimestepRange) and combined, then one
    Apply ControlNet on the positive and that negative, one stock KSampler."""
    plain = model_stacks.clip_prompts(base, assets)
    setup = model_stacks.controlnet(plain, assets)
    assert setup.clip is not None  # the pack encodes the empty prompt itself
    percent, ranged = switch_percent(plain.model, START), nodes.ConditioningSetTimestepRange()
    switching = ranged.set_range(plain.empty, 0.0, percent)[0] + ranged.set_range(plain.negative, percent, 1.0)[0]
    control_net = nodes.ControlNetLoader().load_controlnet(assets.controlnet_name)[0]
    positive, negative = nodes.ControlNetApplyAdvanced().apply_controlnet(plain.positive, switching, control_net,
                                                                          assets.hint, 0.5, 0.0, 1.0)[:2]
    expected = stock.ksampler(setup.model, SEED, STEPS, CFG, "euler", "normal", positive, negative,
                              setup.latent)["samples"]
    assert torch.equal(delayed(setup, START), expected)
    uncontrolled_empty = one_stock_run_switching(model_stacks.replace(setup, empty=plain.empty), START)
    assert not torch.equal(expected, uncontrolled_empty)  # what the pack gave before: the ControlNet matters here


def test_lazycache_leaves_heuns_corrector_evaluations_in_their_step(sd15, base, prompts):
    """LazyCache answers some of the guider's evaluations itself; the step clock counts them all."""
    log = []
    cached = model_stacks.first_output(nodes_easycache.LazyCacheNode, sd15, 0.05, 0.0, 0.95, False)
    setup = Setup(instrument(cached, prompts, log), base.positive, base.negative, base.empty, base.latent)
    delayed(setup, START, sampler="heun")
    assert len(log) < 2 * STEPS - 1, "LazyCache skipped no evaluation"
    wrong = [(evaluation.sampler_step, round(evaluation.sigma, 3), evaluation.uncond) for evaluation in log
             if evaluation.uncond != ("empty" if evaluation.sampler_step < START else "negative")]
    assert not wrong, f"evaluations (sampler step, sigma, unconditional) on the wrong side of the switch: {wrong}"


def test_lazycache_raises_no_false_notice(built, caplog):
    lazy = next(stack for stack in STACKS if stack.name == "LazyCache")
    _, setup = built(lazy)
    with caplog.at_level(logging.WARNING, logger="delayed_negative"):
        delayed(setup, START)
    notices = [record.getMessage() for record in caplog.records if record.name == "delayed_negative"]
    assert not notices
