"""Where the negative acted (issue 23): the recorder's "negative influence" track against the stock
path. At every evaluation where the negative is in force, the stored map must be
(cfg - 1) x (D(empty) - D(negative)) (root mean square over the channels), with D ComfyUI's own
prediction of each prompt alone, computed here by a separate stock run at the same x and sigma;
the sampled latent must not change; and on the toy portraits model it must sit where the glasses
come off.
"""

from functools import partial

import comfy.conds
import comfy.samplers
import numpy as np
import pytest
import torch
from comfy.patcher_extension import WrappersMP
from devtools.models.tiny_dit_models import FAMILIES
from devtools.models.tiny_models import tiny_sd15

import nodes
from delayed_negative import render
from delayed_negative.attention.maps import Track
from delayed_negative.attention.negative_influence import batches_alike
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.attention_maps import (AttentionChart, AttentionGrid, AttentionMask, AttentionOverlay,
                                                   CollectAttentionMaps, RecordAttentionMaps)
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.nodes.empty_prompt import empty_in_place_of
from delayed_negative.render.grid import GridLayout
from delayed_negative.render.influence_axis import INFLUENCE_COLOUR
from delayed_negative.render.viewer_payload import viewer_payload
from delayed_negative.samplers.ksampler import delayed_negative_ksampler
from delayed_negative.samplers.negative_window import NegativeTiming

STEPS, START, CFG, SEED = 5, 2, 5.0, 3
NAN = float("nan")
ROUNDINGS = 4  # the map may differ from the reference by this many float32 roundings of the predictions
COLUMNS = {"positive": [("man", [2])], "negative": [("hat", [1])], "empty": [("<end>", [1])]}


def sd15_prompts(negative_tokens=77):
    generator = torch.Generator().manual_seed(0)
    tokens = {"positive": 77, "negative": negative_tokens, "empty": 77}
    return {name: [[torch.randn(1, count, 768, generator=generator) * 3, {}]] for name, count in tokens.items()}


def dit_prompts(spec):
    generator = torch.Generator().manual_seed(0)
    return {name: spec.conditioning(generator) for name in ("positive", "negative", "empty")}


@pytest.fixture(scope="module")
def sd15():
    return tiny_sd15(), sd15_prompts(), torch.zeros(1, 4, 8, 8)


@pytest.fixture(scope="module")
def family():
    """The SD3 family's small MMDiT (a module fixture named as conftest.py's model markers know it)."""
    spec = FAMILIES["sd3"]
    return spec.build(), dit_prompts(spec), torch.zeros(spec.latent_shape)


def recording_model(model, prompts, influence=True):
    recording = AttentionRecording(COLUMNS, prompts["empty"][0][0], negative_influence=influence)
    in_place = partial(empty_in_place_of, empty=prompts["empty"]) if influence else None
    return record_attention(model, recording, "all", in_place), recording


def sample(model, prompts, latent, start=START, cfg=CFG):
    return delayed_negative_ksampler(model, SEED, STEPS, cfg, "euler", "simple", prompts["positive"],
                                     prompts["negative"], {"samples": latent}, NegativeTiming(start),
                                     prompts["empty"])["samples"]


def capture_evaluations(model):
    """A clone that appends (x, sigma, [the branches of each model call]) of every evaluation to
    the list it returns with it."""
    evaluations = []

    def capture(executor, x, timestep, model_options={}, seed=None):
        evaluations.append((x.detach().clone(), float(timestep[0]), []))
        return executor(x, timestep, model_options, seed)

    def model_call(apply_model, args):
        evaluations[-1][2].append(tuple(args["cond_or_uncond"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    clone = model.clone()
    clone.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, "test.capture", capture)
    clone.set_model_unet_function_wrapper(model_call)
    return clone, evaluations


def stock_prediction(model, conditioning, x, sigma):
    """ComfyUI's prediction (the denoised latent) of `conditioning` alone at x and sigma: the stock
    CFGGuider at cfg 1, with a sampler that evaluates the model once, at x."""
    predictions = []

    def evaluate_once(model_k, noise, sigmas, extra_args=None, callback=None, disable=None):
        predictions.append(model_k(x, x.new_full((x.shape[0],), sigma), **extra_args))
        return noise

    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(conditioning, conditioning)
    guider.set_cfg(1.0)
    guider.sample(torch.zeros_like(x), torch.zeros_like(x), comfy.samplers.KSAMPLER(evaluate_once),
                  torch.tensor([sigma, 0.0]), seed=SEED)
    return predictions[0].float()


def expected_influence(model, prompts, x, sigma, cfg=CFG):
    """(map [height, width], share, rounding) by hand from three separate stock predictions;
    `rounding`: float32's relative precision times the size of the terms the map subtracts (the
    recorder's predictions come from one batch of three prompts, these from three of one)."""
    positive, negative, empty = (stock_prediction(model, prompts[name], x, sigma)
                                 for name in ("positive", "negative", "empty"))
    influence = (cfg - 1) * (empty - negative)
    share = influence.norm() / (cfg * (positive - negative)).norm()
    rounding = torch.finfo(torch.float32).eps * (cfg - 1) * torch.stack([empty, negative]).abs().max()
    return influence[0].pow(2).mean(dim=0).sqrt(), share, float(rounding)


def check_against_stock(model, prompts, latent, calls_with_the_negative):
    """The recorded influence against the stock predictions at each evaluation; `calls_with_the_
    negative`: the model calls (their branches, ComfyUI's cond_or_uncond) of an evaluation with the
    negative in force."""
    patched, recording = recording_model(model, prompts)
    captured, evaluations = capture_evaluations(patched)
    sample(captured, prompts, latent)
    maps = recording.snapshot()
    track = maps.influence_tracks()[0]
    assert len(evaluations) == STEPS  # euler: one evaluation per step
    for step, (x, sigma, calls) in enumerate(evaluations):
        if step < START:  # the empty prompt in the unconditional branch: nothing acted, nothing more evaluated
            assert maps.maps[step, track].isnan().all() and maps.influence_share[step].isnan().all()
            assert sorted(calls) == [(1, 0)]
            continue
        assert calls == calls_with_the_negative
        expected_map, expected_share, rounding = expected_influence(model, prompts, x, sigma)
        error = (maps.maps[step, track, 0] - expected_map).abs().max()
        print(f"step {step}: largest difference {error:.2e} = {error / rounding:.1f} x float32 rounding")
        torch.testing.assert_close(maps.maps[step, track, 0], expected_map, rtol=0, atol=ROUNDINGS * rounding)
        torch.testing.assert_close(maps.influence_share[step, 0], expected_share, rtol=1e-4, atol=0)
        assert expected_map.mean() > 0
    return maps


def test_the_influence_is_the_difference_of_two_stock_predictions_on_a_unet(sd15):
    maps = check_against_stock(*sd15, [(2, 1, 0)])  # the empty prompt (2) in the same batch
    assert maps.cfg[START:].eq(CFG).all()


def test_the_influence_is_the_difference_of_two_stock_predictions_on_a_dit(family):
    check_against_stock(*family, [(2, 1, 0)])


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m_sde"])
def test_the_latent_stays_bit_identical(sd15, sampler):
    model, prompts, latent = sd15

    def run(with_model):
        return delayed_negative_ksampler(with_model, SEED, STEPS, CFG, sampler, "karras", prompts["positive"],
                                         prompts["negative"], {"samples": latent}, NegativeTiming(START),
                                         prompts["empty"])["samples"]

    plain = run(model)
    assert torch.equal(run(recording_model(model, prompts)[0]), plain)
    assert torch.equal(run(recording_model(model, prompts, influence=False)[0]), plain)


def test_the_latent_stays_bit_identical_on_a_dit(family):
    model, prompts, latent = family
    assert torch.equal(sample(recording_model(model, prompts)[0], prompts, latent), sample(model, prompts, latent))


def test_the_empty_prompt_leaves_the_attention_maps_as_they_were(sd15):
    model, prompts, latent = sd15
    with_influence, without = recording_model(model, prompts)[1], recording_model(model, prompts, False)[1]
    sample(record_attention(model, with_influence, "all", partial(empty_in_place_of, empty=prompts["empty"])),
           prompts, latent)
    sample(record_attention(model, without), prompts, latent)
    maps, reference = with_influence.snapshot(), without.snapshot()
    assert maps.tracks[:-1] == reference.tracks and maps.tracks[-1].word == "negative influence"
    # the <end> track stays NaN after the start: the measure's empty prompt is not recorded as one
    assert torch.equal(maps.maps[:, :-1].nan_to_num(-1.0), reference.maps.nan_to_num(-1.0))


def test_a_negative_longer_than_the_empty_prompt_is_measured_in_a_batch_of_its_own(sd15):
    """A two-chunk negative batched with a one-chunk empty prompt would make ComfyUI repeat the
    positive's tokens too: the empty prompt goes in a call of its own, and the latent stays."""
    (model, _, latent), prompts = sd15, sd15_prompts(negative_tokens=154)
    check_against_stock(model, prompts, latent, [(1, 0), (1,)])
    assert torch.equal(sample(recording_model(model, prompts)[0], prompts, latent), sample(model, prompts, latent))


def test_only_prompts_of_the_negatives_length_join_its_batch():
    def conds(*lengths):
        return [{"model_conds": {"c_crossattn": comfy.conds.CONDCrossAttn(torch.zeros(1, n, 8))}} for n in lengths]

    assert batches_alike(conds(77), conds(77))
    assert batches_alike(conds(77, 154), conds(77))
    assert not batches_alike(conds(154), conds(77))


def test_no_measure_at_cfg_1_and_the_stock_ksampler_measures_every_step(sd15):
    model, prompts, latent = sd15
    patched, recording = recording_model(model, prompts)
    sample(patched, prompts, latent, cfg=1.0)
    assert recording.snapshot().maps[:, -1].isnan().all()
    nodes.KSampler().sample(patched, SEED, STEPS, CFG, "euler", "simple", prompts["positive"], prompts["negative"],
                            {"samples": latent})
    assert not recording.snapshot().maps[:, -1].isnan().any()  # the negative from step 0


# On the toy portraits model (docs/toy-model.md): "portrait photo of a man with glasses", the
# negative "glasses" from its critical step 3 of 10, cfg 5, seed 0, 8 images, as tests/test_toy_model.py.
# The glasses region is where the drawing puts glasses on the face the run without negative drew
# (devtools/toy_model/detect.glasses_region), brought to the latent's 8 x 8 cells.
GLASSES_RUN = {"seed": 0, "batch": 8, "steps": 10}
GLASSES_PROMPT, NEGATIVE, CRITICAL_STEP = "portrait photo of a man with glasses", "glasses", 3
# Measured on ComfyUI 0.3.75 (2026-12-02): glasses in 6 of 8 without the negative, all 6 removed;
# the influence over steps 3 to 9 is 3.9, 7.0, 4.5, 6.8, 4.6 and 4.6 times as large, per latent
# cell, inside the glasses region as outside it.
MIN_RATIO = 2.5       # influence inside / outside the glasses region, per image; measured at least 3.9
MIN_IMAGES = 5        # images whose glasses came off with a ratio of MIN_RATIO or more; measured 6



def glasses_cells(image: np.ndarray) -> torch.Tensor | None:
    """[8, 8] bool: the latent cells at least half inside the glasses region of a 64 x 64 image."""
    from devtools.toy_model.detect import find_face, glasses_region

    face = find_face(image)
    if face is None:
        return None
    region = torch.from_numpy(glasses_region(face, image.shape[:2])).float()
    return region.reshape(8, 8, 8, 8).mean(dim=(1, 3)) >= 0.5


def test_on_the_toy_model_the_negative_acts_where_the_glasses_come_off(toy):
    from devtools.toy_model.experiments import Run, has_glasses, sample as sample_toy

    model, clip, vae = toy
    reference = sample_toy(toy, Run(GLASSES_PROMPT, **GLASSES_RUN))
    patched, recording = RecordAttentionMaps.execute(model, clip, GLASSES_PROMPT, NEGATIVE, "glasses", "glasses",
                                                     "all", True).result
    positive = nodes.CLIPTextEncode().encode(clip, GLASSES_PROMPT)[0]
    negative = nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0]
    latent = nodes.EmptyLatentImage().generate(64, 64, GLASSES_RUN["batch"])[0]
    samples = DelayedNegativeKSampler.execute(patched, GLASSES_RUN["seed"], GLASSES_RUN["steps"], 5.0, "euler",
                                              "normal", positive, negative, latent, 1.0, CRITICAL_STEP, -1, "step",
                                              "empty prompt", clip, None).result[0]
    maps = CollectAttentionMaps.execute(recording, samples).result[0]
    images = nodes.VAEDecode().decode(vae, samples)[0].detach().float().numpy()
    influence = maps.maps[:, maps.track_index("negative influence")]
    assert influence[:CRITICAL_STEP].isnan().all() and not influence[CRITICAL_STEP:].isnan().any()
    removed = has_glasses(reference) & ~has_glasses(images)
    ratios = []
    for item in np.flatnonzero(removed):
        cells = glasses_cells(reference[item])
        if cells is None:
            continue
        acted = influence[CRITICAL_STEP:, item].mean(dim=0)
        ratios.append(float(acted[cells].mean() / acted[~cells].mean()))
    print("influence inside / outside the glasses region, per image whose glasses came off:", ratios)
    assert sum(ratio >= MIN_RATIO for ratio in ratios) >= MIN_IMAGES, ratios


# --- the views: the influence is one more track, in latent units ------------------------------------------------

def test_the_chart_draws_the_influence_on_its_own_scale_beside_the_attention():
    steps = torch.arange(6.0)
    attention = render.Series("glasses", 0.02 + 0.01 * steps, "unconditional")
    influence = render.Series("negative influence", torch.tensor([NAN, NAN, 3.0, 5.0, 4.0, 2.0]), "influence")
    with_influence = chart_pixels(render.strength_chart([attention, influence], "chart"))
    alone = chart_pixels(render.strength_chart([attention], "chart"))
    black = (with_influence == INFLUENCE_COLOUR).all(axis=-1)
    assert black.sum() > 100  # the influence's line, legend swatch and scale
    # the attention keeps its scale: its line spans as many rows as without the influence (values 100x smaller)
    colour = render.chart.SERIES_COLOURS[0]
    assert abs(rows_of(with_influence, colour) - rows_of(alone, colour)) <= 2


def chart_pixels(image):
    return (image[0].numpy() * 255).round().astype(np.uint8)


def rows_of(pixels, colour) -> int:
    rows = np.flatnonzero((pixels == colour).all(axis=-1).any(axis=1))
    return int(rows[-1] - rows[0])


def test_global_scaling_keeps_the_influence_apart_from_the_attention():
    maps = torch.stack([torch.full((2, 2, 2), 0.05), torch.full((2, 2, 2), 4.0)], dim=1)  # [steps, words, h, w]
    maps[1, 0], maps[1, 1] = 0.1, 8.0
    scaled = render.normalize_maps(maps, "global", apart=[1])
    assert torch.equal(scaled[:, 0], scaled[:, 1]) and scaled.amin() == 0 and scaled.amax() == 1
    assert render.normalize_maps(maps, "global")[:, 0].amax() < 0.01  # together, the attention would vanish


def test_every_view_shows_the_influence_of_a_recorded_run(sd15):
    model, prompts, latent = sd15
    patched, recording = recording_model(model, prompts)
    sample(patched, prompts, latent)
    maps = recording.snapshot()
    assert maps.tracks[-1] == Track("influence", "influence", "negative influence")
    grid = AttentionGrid.execute(maps, "negative influence, hat", "all", 0, "viridis", "global", 32).result[0]
    assert grid.shape[1] == GridLayout(STEPS, 2, 32).height
    image = torch.zeros(1, 64, 64, 3)
    assert AttentionOverlay.execute(maps, image, "negative influence", 0, -1, "viridis", 0.5).result[0].shape[0] == 1
    mask = AttentionMask.execute(maps, "negative influence", 0, START, -1, 0, 0, 0.0).result[0]
    assert mask.shape == (1, 64, 64) and mask.isfinite().all() and mask.amax() > 0.5
    assert AttentionChart.execute(maps, "", 0, -1).result[0].shape == (1, 432, 768, 3)
    payload = viewer_payload(maps, [])
    assert payload["tracks"][-1]["branch"] == "influence"
    assert payload["influence_share"][START][0] == pytest.approx(float(maps.influence_share[START, 0]))
    assert payload["influence_share"][0] == [None]


def test_a_workflow_saved_before_the_setting_runs_with_it_off():
    """Saved workflows hold Record's five widget values (prompts, words, layers); the frontend keeps
    the new sixth at its default, and so does the pack's own converter (devtools/host/workflow_api.py)."""
    from devtools.host.workflow_api import WorkflowError, widget_inputs

    info = RecordAttentionMaps.GET_NODE_INFO_V1()
    node = {"id": 1, "type": "DelayedNegativeRecordAttentionMaps", "widgets_values": ["", "", "man", "", "all"]}
    assert widget_inputs(node, info) == {"positive_prompt": "", "negative_prompt": "", "positive_words": "man",
                                         "negative_words": "", "layers": "all"}
    assert widget_inputs({**node, "widgets_values": [*node["widgets_values"], True]}, info)["negative_influence"]
    with pytest.raises(WorkflowError):  # a required widget missing is still an error
        widget_inputs({**node, "widgets_values": node["widgets_values"][:4]}, info)
    assert RecordAttentionMaps.execute.__defaults__ == (False,)


def test_the_bench_runs_and_says_its_ratios(checkpoint, monkeypatch):
    """devtools/bench/bench_negative_influence.py at the tests' sizes, so that it cannot rot."""
    import re
    from types import SimpleNamespace

    from devtools.bench import bench_negative_influence

    monkeypatch.setattr(bench_negative_influence, "load_checkpoint", lambda: checkpoint[:2])
    lines = bench_negative_influence.run(SimpleNamespace(size=32, steps=3, repeats=1))
    assert "medians of 1 alternating runs" in lines[0] and len(lines) == 3
    for line in lines[1:]:
        ratio, on, off = map(float, re.search(r": (\d+\.\d{3}) \((\d+\.\d{3}) s / (\d+\.\d{3}) s\)", line).groups())
        assert ratio > 0 and on > 0 and off > 0, line
