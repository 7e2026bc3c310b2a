"""The delayed negative composes with the rest of ComfyUI, and rejects bad input clearly.

SDXL conds, batches, conds of different lengths or with their own timestep ranges, other
packs' model patches (APG, PAG, CFGZeroStar, RescaleCFG, a post-cfg function), CFG++
samplers, the skipped unconditional evaluation, untouched inputs, error messages and
interrupts: each checked against ComfyUI's own stock nodes on small in-memory models.
"""

import pytest
import torch

import comfy.model_management
import comfy.utils
import nodes
from comfy_extras import nodes_apg, nodes_cfg, nodes_custom_sampler as custom, nodes_model_advanced, nodes_pag
from devtools.models.tiny_models import tiny_sd15, tiny_sdxl

import stock
from delayed_negative.nodes.delayed_negative import (DelayedNegativeGuiderNode, DelayedNegativeKSampler,
                                                     DelayedNegativeKSamplerAdvanced)
from delayed_negative.samplers.ksampler import full_schedule
from instrumented import sampler_loop_step

SEED, STEPS, CFG, START = 11, 6, 5.0, 2
NEVER = -1.0


@pytest.fixture(scope="module")
def sd15():
    return tiny_sd15()


@pytest.fixture(scope="module")
def sdxl():
    return tiny_sdxl()


def embeddings(width, lengths, seed=0):
    """Random cross-attention embeddings, one per name, [1, length, width]."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(1, length, width, generator=generator) for name, length in lengths.items()}


def as_conditioning(tensor, **values):
    return [[tensor, dict(values)]]


@pytest.fixture(scope="module")
def prompts():
    """SD1.5-width embeddings of the usual length (77 tokens), as tensors and conditionings."""
    tensors = embeddings(768, {"positive": 77, "negative": 77, "empty": 77})
    return tensors, {name: as_conditioning(tensor) for name, tensor in tensors.items()}


@pytest.fixture(scope="module")
def stock_euler(sd15, prompts):
    """The stock KSampler's latent for the SD1.5 prompts (euler, normal): what a start of 0 must give."""
    _, conds = prompts
    return stock_latent(sd15, conds["positive"], conds["negative"], stock.empty_latent())


def delayed(model, positive, negative, latent, start, before="early conditioning", early=None, sampler="euler",
            scheduler="normal", cfg=CFG, end=NEVER, unit="step", clip=None, steps=STEPS):
    return DelayedNegativeKSampler.execute(
        model, SEED, steps, cfg, sampler, scheduler, positive, negative, latent, 1.0, start, end, unit, before,
        clip, early).result[0]["samples"]


def stock_latent(model, positive, negative, latent, sampler="euler", scheduler="normal", cfg=CFG):
    return stock.ksampler(model, SEED, STEPS, cfg, sampler, scheduler, positive, negative, latent)["samples"]


class Recorder:
    """A clone of a model that records, for every real evaluation, what its unconditional rows held.

    Each call appends (sigma, the sampler's own loop step, [name of each unconditional row],
    [ADM 'y' of each unconditional row or None]). A row is named by the embedding it holds;
    ComfyUI tiles cross-attention to a common length when it batches conds of different
    lengths (CONDCrossAttn.concat), so a row matches an embedding repeated to its length.
    """

    def __init__(self, model, tensors):
        self.tensors = tensors
        self.calls = []
        self.rows = []  # rows of the model input per call: the work done
        self.model = model.clone()
        self.model.set_model_unet_function_wrapper(self.wrapper)

    def name_of(self, row):
        for name, tensor in self.tensors.items():
            length = tensor.shape[1]
            if row.shape[0] % length == 0 and row.shape[1] == tensor.shape[2] and torch.equal(
                    row, tensor[0].repeat(row.shape[0] // length, 1).to(row)):
                return name
        return "unknown"

    def wrapper(self, apply_model, args):
        model_conds, chunks = args["c"], args["cond_or_uncond"]
        batch = args["input"].shape[0] // len(chunks)
        rows = [chunk * batch + image for chunk, which in enumerate(chunks) if which == 1 for image in range(batch)]
        names = [self.name_of(model_conds["c_crossattn"][row]) for row in rows]
        adm = [model_conds["y"][row].clone() if "y" in model_conds else None for row in rows]
        self.calls.append((float(args["timestep"][0]), sampler_loop_step(), names, adm))
        self.rows.append(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **model_conds)

    def unconds_by_step(self):
        return [(step, names) for _sigma, step, names, _adm in self.calls]


def assert_switch(recorder, before, after="negative", batch=1):
    """Evaluations of steps < START used `before` in every unconditional row, later ones `after`.

    None: the evaluation had no unconditional rows at all (the unconditional branch skipped).
    """

    def expected(step):
        name = before if step < START else after
        return [] if name is None else [name] * batch

    seen = recorder.unconds_by_step()
    wrong = [(step, names) for step, names in seen if names != expected(step)]
    assert not wrong, f"evaluations with the wrong unconditional conds: {wrong} of {seen}"
    assert {step for step, _ in seen} == set(range(STEPS))


# 1. SDXL: pooled outputs and size conds ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sdxl_prompts():
    tensors = embeddings(2048, {"positive": 77, "negative": 77, "empty": 77}, seed=1)
    generator = torch.Generator().manual_seed(2)
    # Each its own pooled output and sizes (as CLIPTextEncodeSDXL puts them), so a mix-up shows.
    sizes = {"positive": (1024, 1024, 0, 0), "negative": (896, 1152, 32, 16), "empty": (768, 640, 0, 8)}
    conds = {}
    for name, (width, height, crop_w, crop_h) in sizes.items():
        conds[name] = as_conditioning(
            tensors[name], pooled_output=torch.randn(1, 1280, generator=generator), width=width, height=height,
            crop_w=crop_w, crop_h=crop_h, target_width=width, target_height=height)
    return tensors, conds


def test_sdxl_start_zero_and_start_at_the_end_are_the_stock_ksampler(sdxl, sdxl_prompts):
    _, conds = sdxl_prompts
    latent = stock.empty_latent()
    positive, negative, empty = conds["positive"], conds["negative"], conds["empty"]
    expected = stock_latent(sdxl, positive, negative, latent)
    assert torch.equal(delayed(sdxl, positive, negative, latent, 0, early=empty), expected)
    expected_empty = stock_latent(sdxl, positive, empty, latent)
    assert torch.equal(delayed(sdxl, positive, negative, latent, STEPS, early=empty), expected_empty)
    # The equalities would not notice lost ADM conds if they did not matter to this model.
    without_pooled = as_conditioning(negative[0][0], **dict(negative[0][1], pooled_output=torch.zeros(1, 1280)))
    assert not torch.equal(stock_latent(sdxl, positive, without_pooled, latent), expected)
    resized = as_conditioning(empty[0][0], **dict(empty[0][1], width=512))
    assert not torch.equal(stock_latent(sdxl, positive, resized, latent), expected_empty)


def test_sdxl_every_unconditional_row_carries_its_own_pooled_output_and_sizes(sdxl, sdxl_prompts):
    tensors, conds = sdxl_prompts
    recorder = Recorder(sdxl, tensors)
    delayed(recorder.model, conds["positive"], conds["negative"], stock.empty_latent(), START, early=conds["empty"])
    assert_switch(recorder, "empty")
    expected_adm = {name: sdxl.model.encode_adm(**conditioning[0][1])[0] for name, conditioning in conds.items()}
    assert not torch.equal(expected_adm["empty"], expected_adm["negative"])
    for _sigma, step, names, adm in recorder.calls:
        for name, row in zip(names, adm):
            torch.testing.assert_close(row, expected_adm[name].to(row), rtol=0, atol=0,
                                       msg=f"step {step}: {name}'s ADM input is not its own")


# 2. Batch size 2, negative of another token length ---------------------------------------------------------

@pytest.fixture(scope="module")
def long_negative():
    tensors = embeddings(768, {"positive": 77, "negative": 154, "empty": 77}, seed=3)
    return tensors, {name: as_conditioning(tensor) for name, tensor in tensors.items()}


def test_batch_of_two_with_a_longer_negative_is_the_stock_ksampler_at_start_zero(sd15, long_negative):
    _, conds = long_negative
    latent = stock.empty_latent(batch_size=2)
    expected = stock_latent(sd15, conds["positive"], conds["negative"], latent)
    result = delayed(sd15, conds["positive"], conds["negative"], latent, 0, early=conds["empty"])
    assert result.shape[0] == 2 and torch.equal(result, expected)
    # The two images got different noise, so both rows of the batch were really sampled.
    assert not torch.allclose(result[0], result[1])


def test_batch_of_two_with_a_longer_negative_switches_exactly(sd15, long_negative):
    tensors, conds = long_negative
    recorder = Recorder(sd15, tensors)
    delayed(recorder.model, conds["positive"], conds["negative"], stock.empty_latent(batch_size=2), START,
            early=conds["empty"])
    assert_switch(recorder, "empty", batch=2)


# 3. A negative with its own timestep range ----------------------------------------------------------------

@pytest.mark.parametrize("percent_start, percent_end", [(0.0, 0.5), (0.5, 1.0)])
def test_a_negative_keeps_its_own_timestep_range_after_the_start(sd15, prompts, percent_start, percent_end):
    tensors, conds = prompts
    ranged = nodes.ConditioningSetTimestepRange().set_range(conds["negative"], percent_start, percent_end)[0]
    recorder = Recorder(sd15, tensors)
    delayed(recorder.model, conds["positive"], ranged, stock.empty_latent(), START, early=conds["empty"])

    # Where ComfyUI's get_area_and_mult lets a cond with these percentages into an evaluation.
    model_sampling = sd15.get_model_object("model_sampling")
    sigma_start = model_sampling.percent_to_sigma(percent_start)
    sigma_end = model_sampling.percent_to_sigma(percent_end)

    def in_range(sigma):
        sigma = torch.tensor(sigma, dtype=torch.float32)
        return not bool(sigma > sigma_start) and not bool(sigma < sigma_end)

    seen = [(step, names, in_range(sigma)) for sigma, step, names, _ in recorder.calls]
    wrong = [(step, names) for step, names, inside in seen
             if names != (["empty"] if step < START else ["negative"] if inside else [])]
    assert not wrong, f"evaluations with the wrong unconditional conds: {wrong} of {seen}"
    # Both sides of the negative's own range fall on steps after the start, or this proved nothing.
    assert {inside for step, _, inside in seen if step >= START} == {True, False}


# 4. Other packs' model patches ----------------------------------------------------------------------------

PATCHES = {
    "APG": lambda model: nodes_apg.APG.execute(model, 0.5, 2.0, 0.5).result[0],
    "PAG": lambda model: nodes_pag.PerturbedAttentionGuidance.execute(model, 2.0).result[0],
    "RescaleCFG": lambda model: nodes_model_advanced.RescaleCFG().patch(model, 0.7)[0],
}
if hasattr(nodes_cfg, "CFGZeroStar"):
    PATCHES["CFGZeroStar"] = lambda model: nodes_cfg.CFGZeroStar.execute(model).result[0]


@pytest.mark.parametrize("patch", sorted(PATCHES))
def test_patched_model_is_the_stock_ksampler_at_both_ends(sd15, prompts, stock_euler, patch):
    _, conds = prompts
    latent = stock.empty_latent()
    positive, negative, empty = conds["positive"], conds["negative"], conds["empty"]
    # A fresh patch for every run: APG keeps a running average between evaluations.
    expected = stock_latent(PATCHES[patch](sd15), positive, negative, latent)
    assert not torch.equal(expected, stock_euler), f"{patch} changes nothing"
    assert torch.equal(delayed(PATCHES[patch](sd15), positive, negative, latent, 0, early=empty), expected)
    expected_empty = stock_latent(PATCHES[patch](sd15), positive, empty, latent)
    assert torch.equal(delayed(PATCHES[patch](sd15), positive, negative, latent, STEPS, early=empty), expected_empty)


def test_post_cfg_function_sees_the_unconditional_prediction_of_each_step(sd15, prompts):
    tensors, conds = prompts
    seen = []

    def post_cfg(args):
        uncond = args["uncond"][0]["model_conds"]["c_crossattn"].cond
        name = next(name for name, tensor in tensors.items() if torch.equal(uncond, tensor))
        # What the model predicts for each candidate unconditional prompt at this very input.
        predictions = {candidate: args["model"].apply_model(args["input"], args["sigma"],
                                                            c_crossattn=tensors[candidate])
                       for candidate in ("empty", "negative")}
        seen.append((sampler_loop_step(), name, args["cond_scale"], args["uncond_denoised"], predictions))
        return args["denoised"]

    model = sd15.clone()
    model.set_model_sampler_post_cfg_function(post_cfg)
    delayed(model, conds["positive"], conds["negative"], stock.empty_latent(), START, early=conds["empty"])

    assert [step for step, *_ in seen] == list(range(STEPS))
    for step, name, cond_scale, uncond_denoised, predictions in seen:
        expected, other = ("empty", "negative") if step < START else ("negative", "empty")
        assert (name, cond_scale) == (expected, CFG), f"step {step}"
        off_by = (uncond_denoised - predictions[expected]).abs().max()
        apart = (predictions[other] - predictions[expected]).abs().max()
        assert off_by < apart / 20, f"step {step}: {other}'s prediction is as close as {expected}'s"


# 5. CFG++ samplers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["euler_cfg_pp", "dpmpp_2m_cfg_pp"])
def test_cfg_pp_samplers_are_the_stock_ksampler_at_both_ends(sd15, prompts, sampler):
    _, conds = prompts
    latent = stock.empty_latent()
    positive, negative, empty = conds["positive"], conds["negative"], conds["empty"]
    expected = stock_latent(sd15, positive, negative, latent, sampler)
    assert torch.equal(delayed(sd15, positive, negative, latent, 0, early=empty, sampler=sampler), expected)
    expected_empty = stock_latent(sd15, positive, empty, latent, sampler)
    assert torch.equal(delayed(sd15, positive, negative, latent, STEPS, early=empty, sampler=sampler), expected_empty)


@pytest.mark.parametrize("sampler", ["euler_cfg_pp", "dpmpp_2m_cfg_pp"])
def test_cfg_pp_with_no_guidance_uses_the_positive_as_unconditional_before_the_start(sd15, prompts, sampler):
    tensors, conds = prompts
    recorder = Recorder(sd15, tensors)
    result = delayed(recorder.model, conds["positive"], conds["negative"], stock.empty_latent(), START,
                     before="no guidance", sampler=sampler)
    assert torch.isfinite(result).all()
    assert_switch(recorder, "positive")


def test_euler_cfg_pp_with_no_guidance_takes_plain_steps_before_the_start(sd15, prompts):
    # Stock reference: at cfg 1 a CFG++ sampler still evaluates the negative (it sets
    # disable_cfg1_optimization); with the positive as negative that is the plain step.
    _, conds = prompts
    positive, negative = conds["positive"], conds["negative"]
    first = stock.ksampler_advanced(sd15, "enable", SEED, STEPS, 1.0, "euler_cfg_pp", "normal", positive, positive,
                                    stock.empty_latent(), 0, START, "enable")
    reference = stock.ksampler_advanced(sd15, "disable", SEED, STEPS, CFG, "euler_cfg_pp", "normal", positive,
                                        negative, first, START, 10000, "disable")["samples"]
    result = delayed(sd15, positive, negative, stock.empty_latent(), START, before="no guidance",
                     sampler="euler_cfg_pp")
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)


# 6. No guidance before the start skips the unconditional evaluation ----------------------------------------

def test_no_guidance_skips_the_unconditional_evaluation_before_the_start(sd15, prompts):
    tensors, conds = prompts
    recorder = Recorder(sd15, tensors)
    result = delayed(recorder.model, conds["positive"], conds["negative"], stock.empty_latent(), START,
                     before="no guidance")
    assert_switch(recorder, None)
    # One row per evaluation before the start, two after: less model work than the stock 2 per step.
    assert recorder.rows == [1] * START + [2] * (STEPS - START)
    # And the skipped branch means guidance 1 (the positive's prediction alone), as stock cfg 1 does.
    first = stock.ksampler_advanced(sd15, "enable", SEED, STEPS, 1.0, "euler", "normal", conds["positive"],
                                    conds["negative"], stock.empty_latent(), 0, START, "enable")
    reference = stock.ksampler_advanced(sd15, "disable", SEED, STEPS, CFG, "euler", "normal", conds["positive"],
                                        conds["negative"], first, START, 10000, "disable")["samples"]
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-3)


# 7. Inputs are never changed ------------------------------------------------------------------------------

def snapshot(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return type(value)((key, snapshot(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(item) for item in value)
    return value


def assert_unchanged(before, after, path="input"):
    assert type(after) is type(before), f"{path}: {type(before).__name__} became {type(after).__name__}"
    if isinstance(before, torch.Tensor):
        assert after.shape == before.shape and after.dtype == before.dtype and torch.equal(after, before), path
    elif isinstance(before, dict):
        assert list(after) == list(before), f"{path}: keys {list(before)} became {list(after)}"
        for key in before:
            assert_unchanged(before[key], after[key], f"{path}[{key!r}]")
    elif isinstance(before, (list, tuple)):
        assert len(after) == len(before), f"{path}: length {len(before)} became {len(after)}"
        for index, (old, new) in enumerate(zip(before, after)):
            assert_unchanged(old, new, f"{path}[{index}]")
    else:
        assert after is before or after == before, f"{path}: {before!r} became {after!r}"


def model_state(model):
    # ComfyUI patches weights in place while a model is loaded (clones share the module), so
    # the weights are compared unloaded: nothing the run did may stay in them.
    comfy.model_management.unload_all_models()
    return {"model_options": model.model_options, "patches": model.patches, "object_patches": model.object_patches,
            "wrappers": model.wrappers, "callbacks": model.callbacks, "additional_models": model.additional_models,
            "weights": model.model.state_dict()}


def run_guider(model, positive, negative, latent, early):
    guider = DelayedNegativeGuiderNode.execute(model, positive, negative, CFG, START, 5.0, "step",
                                               "early conditioning", None, early).result[0]
    noise = custom.RandomNoise.execute(SEED).result[0]
    sigmas = custom.BasicScheduler.execute(model, "karras", STEPS, 1.0).result[0]
    sampler = custom.KSamplerSelect.execute("heun").result[0]
    return custom.SamplerCustomAdvanced.execute(noise, guider, sampler, sigmas, latent).result[0]


RUNS = {
    "KSampler": lambda model, positive, negative, latent, early: DelayedNegativeKSampler.execute(
        model, SEED, STEPS, CFG, "dpmpp_2m", "karras", positive, negative, latent, 0.8, START, 5.0, "step",
        "early conditioning", None, early).result[0],
    "KSamplerAdvanced": lambda model, positive, negative, latent, early: DelayedNegativeKSamplerAdvanced.execute(
        model, "enable", SEED, STEPS, CFG, "dpm_2_ancestral", "normal", positive, negative, latent, 1, 5, "enable",
        START, 5.0, "step", "early conditioning", None, early).result[0],
    "Guider": run_guider,
}


@pytest.mark.parametrize("node", sorted(RUNS))
def test_inputs_are_never_changed(sd15, prompts, node):
    _, conds = prompts
    # Conds with everything process_conds rewrites: timestep ranges, areas, masks, strengths.
    positive = nodes.ConditioningSetArea().append(conds["positive"], 32, 32, 16, 0, 0.9)[0]
    positive = positive + nodes.ConditioningSetTimestepRange().set_range(conds["empty"], 0.2, 0.9)[0]
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :40] = 1.0
    negative = nodes.ConditioningSetMask().append(conds["negative"], mask, "default", 0.8)[0]
    early = nodes.ConditioningSetTimestepRange().set_range(conds["empty"], 0.0, 0.7)[0]
    latent = stock.empty_latent()
    # A model already patched by other packs (pre-cfg, post-cfg, a weight patch).
    model = PATCHES["PAG"](PATCHES["APG"](sd15))
    key = next(key for key in model.model.state_dict() if key.endswith("out.2.weight"))
    model.add_patches({key: (torch.full_like(model.model.state_dict()[key], 1e-3),)}, 0.5)

    inputs = {"positive": positive, "negative": negative, "early": early, "latent": latent}
    before_inputs, before_model = snapshot(inputs), snapshot(model_state(model))
    out = RUNS[node](model, positive, negative, latent, early)
    assert out["samples"] is not latent["samples"] and torch.isfinite(out["samples"]).all()
    assert not torch.equal(out["samples"], latent["samples"])
    assert_unchanged(before_inputs, inputs)
    assert_unchanged(before_model, model_state(model), "model")


# 8. Bad input ---------------------------------------------------------------------------------------------

def run_node(node, model, conds, cfg=CFG, start=START, end=NEVER, unit="step", before="early conditioning",
             clip=None, early=None):
    positive, negative, latent = conds["positive"], conds["negative"], stock.empty_latent()
    if node == "KSampler":
        return DelayedNegativeKSampler.execute(model, SEED, STEPS, cfg, "euler", "normal", positive, negative, latent,
                                               1.0, start, end, unit, before, clip, early).result[0]["samples"]
    if node == "KSamplerAdvanced":
        return DelayedNegativeKSamplerAdvanced.execute(
            model, "enable", SEED, STEPS, cfg, "euler", "normal", positive, negative, latent, 0, 10000, "disable",
            start, end, unit, before, clip, early).result[0]["samples"]
    guider = DelayedNegativeGuiderNode.execute(model, positive, negative, cfg, start, end, unit, before, clip,
                                               early).result[0]
    sigmas = custom.BasicScheduler.execute(model, "normal", STEPS, 1.0).result[0]
    return custom.SamplerCustomAdvanced.execute(custom.RandomNoise.execute(SEED).result[0], guider,
                                                custom.KSamplerSelect.execute("euler").result[0], sigmas,
                                                latent).result[0]["samples"]


NODE_NAMES = ["KSampler", "KSamplerAdvanced", "Guider"]


@pytest.mark.parametrize("node", NODE_NAMES)
@pytest.mark.parametrize("cfg", [1.0, 0.5])
def test_cfg_at_or_below_one_is_refused(sd15, prompts, node, cfg):
    with pytest.raises(ValueError, match=rf"cfg is {cfg:g}.*Raise cfg above 1"):
        run_node(node, sd15, prompts[1], cfg=cfg, early=prompts[1]["empty"])


@pytest.mark.parametrize("node", NODE_NAMES)
def test_empty_prompt_without_clip_says_to_connect_clip(sd15, prompts, node):
    with pytest.raises(ValueError, match=r"'empty prompt'.*connect the CLIP.*'clip'"):
        run_node(node, sd15, prompts[1], before="empty prompt")


@pytest.mark.parametrize("node", NODE_NAMES)
def test_early_conditioning_with_nothing_connected_says_to_connect_it(sd15, prompts, node):
    with pytest.raises(ValueError, match=r"nothing is connected to 'early_conditioning'.*Connect a conditioning"):
        run_node(node, sd15, prompts[1], before="early conditioning", early=None)


@pytest.mark.parametrize("node, sigma", [(node, 1000.0) for node in NODE_NAMES] + [("KSampler", 0.001)])
def test_a_sigma_outside_the_schedule_names_the_range_and_the_next_run_is_normal(sd15, prompts, stock_euler, node,
                                                                                 sigma):
    conds = prompts[1]
    schedule = full_schedule(sd15, STEPS, "euler", "normal")
    with pytest.raises(ValueError) as error:
        run_node(node, sd15, conds, start=sigma, unit="sigma", early=conds["empty"])
    message = str(error.value)
    assert "negative_start" in message and "outside this schedule" in message
    assert f"{float(schedule[0]):.4g}" in message and f"{float(schedule[STEPS - 1]):.4g}" in message
    # Nothing is left half-done: the next run on the same model is the stock result.
    assert torch.equal(run_node(node, sd15, conds, start=0, early=conds["empty"]), stock_euler)


@pytest.mark.parametrize("start, end", [(4, 4), (4, 2)])
def test_an_end_not_after_the_start_is_refused(sd15, prompts, start, end):
    with pytest.raises(ValueError, match=rf"negative_end \({end}\) must come after negative_start \({start}\)"
                                         r".*Set negative_end to -1"):
        run_node("KSampler", sd15, prompts[1], start=start, end=end, early=prompts[1]["empty"])


@pytest.mark.parametrize("start, unit, words", [
    (2.5, "step", r"negative_start is 2.5, but in steps it must be a whole number.*'fraction of steps'"),
    (1.5, "fraction of steps", r"negative_start is 1.5, but a fraction of steps lies between 0 and 1"),
])
def test_a_start_the_unit_cannot_hold_is_refused(sd15, prompts, start, unit, words):
    with pytest.raises(ValueError, match=words):
        run_node("KSampler", sd15, prompts[1], start=start, unit=unit, early=prompts[1]["empty"])


def test_a_start_beyond_the_steps_is_clamped_to_the_last_step(sd15, prompts):
    _, conds = prompts
    latent = stock.empty_latent()
    at_end = delayed(sd15, conds["positive"], conds["negative"], latent, STEPS, early=conds["empty"])
    assert torch.equal(delayed(sd15, conds["positive"], conds["negative"], latent, STEPS + 7, early=conds["empty"]),
                       at_end)
    assert torch.equal(at_end, stock_latent(sd15, conds["positive"], conds["empty"], latent))


# 9. Interrupt and progress ---------------------------------------------------------------------------------

def interrupting(model, at_call, calls):
    """A clone that asks ComfyUI to interrupt during its `at_call`-th evaluation, as the UI's button does."""

    def wrapper(apply_model, args):
        calls.append(float(args["timestep"][0]))
        if len(calls) == at_call:
            comfy.model_management.interrupt_current_processing()
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched = model.clone()
    patched.set_model_unet_function_wrapper(wrapper)
    return patched


@pytest.mark.parametrize("node", NODE_NAMES)
def test_interrupt_stops_sampling_like_the_stock_ksampler(sd15, prompts, stock_euler, node):
    conds = prompts[1]
    at_call = START + 1
    try:
        stock_calls, calls = [], []
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            stock.ksampler(interrupting(sd15, at_call, stock_calls), SEED, STEPS, CFG, "euler", "normal",
                           conds["positive"], conds["negative"], stock.empty_latent())
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run_node(node, interrupting(sd15, at_call, calls), conds, early=conds["empty"])
        assert len(calls) == len(stock_calls) == at_call
        assert not comfy.model_management.processing_interrupted()
    finally:
        comfy.model_management.interrupt_current_processing(False)
    # The next run is normal.
    assert torch.equal(run_node(node, sd15, conds, start=0, early=conds["empty"]), stock_euler)


def test_progress_bar_advances_like_the_stock_ksampler(sd15, prompts, monkeypatch):
    _, conds = prompts
    # Newer ComfyUI releases drop updates that come within 100 ms of the last one; the comparison
    # is between the two nodes, so both report every update they make.
    if hasattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL"):
        monkeypatch.setattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL", 0.0)
    stock_updates, updates, hook = [], [], comfy.utils.PROGRESS_BAR_HOOK
    try:
        comfy.utils.set_progress_bar_global_hook(lambda value, total, *_, **__: stock_updates.append((value, total)))
        stock_latent(sd15, conds["positive"], conds["negative"], stock.empty_latent(), "heun")
        comfy.utils.set_progress_bar_global_hook(lambda value, total, *_, **__: updates.append((value, total)))
        delayed(sd15, conds["positive"], conds["negative"], stock.empty_latent(), START, early=conds["empty"],
                sampler="heun")
    finally:
        comfy.utils.set_progress_bar_global_hook(hook)
    assert stock_updates[-1] == (STEPS, STEPS)
    assert updates == stock_updates
