"""Explain Image on the real ComfyUI: its maps are the recorder's maps of stock evaluations of the
image noised to each chosen step, and on the trained toy model they point at what the words name."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from comfy.patcher_extension import WrappersMP
from devtools.models.tiny_dit_models import FAMILIES
from devtools.toy_model.portraits import Portrait, draw, random_portrait

import nodes
import stock
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
from delayed_negative.nodes.attention_text_encode import DelayedNegativeTextEncode
from delayed_negative.nodes.explain_image import ExplainImage
from delayed_negative.render.convert import pil_to_image, to_uint8
from delayed_negative.samplers.explain_image import chosen_steps, explain_latent

SEED, STEPS, CFG = 7, 8, 5.0
POSITIVE, NEGATIVE = "portrait photo of a man with glasses", "glasses"
EXAMPLE_PORTRAIT = Portrait(glasses=True)
EXAMPLE_PICTURE = Path(__file__).resolve().parents[1] / "example_workflows" / "toy_portrait_glasses.png"


def portrait_image() -> torch.Tensor:
    """The example's drawn 64 x 64 portrait with glasses as a ComfyUI IMAGE [1, 64, 64, 3]."""
    return torch.from_numpy(draw(EXAMPLE_PORTRAIT).image)[None]


def test_the_example_picture_is_the_drawn_portrait():
    picture = np.asarray(Image.open(EXAMPLE_PICTURE).convert("RGB"))
    assert np.array_equal(picture, to_uint8(portrait_image()[0]))


def stock_maps(model, recording, latent, positive, negative, steps, scheduler, step, seed, cfg):
    """The recorder's maps of KSampler Advanced's one euler step from `step` (the seed's noise added)."""
    samples = stock.ksampler_advanced(model, "enable", seed, steps, cfg, "euler", scheduler, positive, negative,
                                      latent, step, step + 1, "enable")
    return CollectAttentionMaps.execute(recording, samples).result[0]


def by_hand_noised(model, latent, seed, sigma, first_step):
    """The latent noised to `sigma` as written in ComfyUI's model_sampling classes: the seed's
    normal noise, times sigma (epsilon models; sqrt(1 + sigma^2) at the schedule's first sigma),
    or mixed with the latent by sigma (flow models)."""
    latent = model.model.process_latent_in(latent)
    noise = torch.randn(latent.shape, generator=torch.manual_seed(seed))
    if model.model.model_type.name == "FLOW":
        return sigma * noise + (1 - sigma) * latent
    return latent + noise * ((1 + sigma ** 2) ** 0.5 if first_step else sigma)


def with_input_probe(model):
    """A clone that notes the latent and sigma of every model call."""
    probe, calls = model.clone(), []

    def note(executor, x, t, *args, **kwargs):
        calls.append((x.detach().clone(), float(t[0])))
        return executor(x, t, *args, **kwargs)

    probe.add_wrapper_with_key(WrappersMP.APPLY_MODEL, "test.probe", note)
    return probe, calls


def assert_explained_like_stock(model, recording, latent, positive, negative, scheduler, chosen, explain):
    """`explain(model)` (Explain Image's maps with `model`) against, for each chosen step, the
    recorder's maps of the stock one-step pass from it, and the latent the model was called with
    against the one noised by hand."""
    probe, calls = with_input_probe(model)
    maps = explain(probe)
    assert maps.steps == len(chosen) and len(calls) == len(chosen)  # one model call per chosen step
    for index, step in enumerate(chosen):
        reference = stock_maps(model, recording, latent, positive, negative, STEPS, scheduler, step, SEED, CFG)
        assert reference.tracks == maps.tracks and reference.steps == 1
        torch.testing.assert_close(maps.maps[index], reference.maps[0], rtol=0, atol=0, equal_nan=True)  # bit for bit
        assert maps.sigmas[index] == reference.sigmas[0] and torch.equal(maps.cfg[index:index + 1], reference.cfg)
        x, sigma = calls[index]
        assert sigma == pytest.approx(maps.sigmas[index], rel=1e-6)
        expected = by_hand_noised(model, latent["samples"], SEED, maps.sigmas[index], step == 0)
        torch.testing.assert_close(x, expected.expand_as(x), rtol=1e-5, atol=1e-5)  # cond and uncond rows alike
    used = [index for index, track in enumerate(maps.tracks) if track.prompt != "empty"]
    assert bool(maps.evaluated.all()) and not maps.maps[:, used].isnan().any()  # both branches, every step
    return maps


def test_the_maps_equal_the_recorder_s_maps_of_stock_single_steps_on_sd15(checkpoint, caplog):
    model, clip, vae = checkpoint
    patched, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "man, glasses", "glasses",
                                                     "all").result
    image = portrait_image()
    latent = nodes.VAEEncode().encode(vae, image)[0]
    positive, negative = stock.encode(clip, POSITIVE), stock.encode(clip, NEGATIVE)

    def explain(probe):  # steps in any order, repeated: each once, in schedule order
        return ExplainImage.execute(probe, recording, vae, image, positive, negative, STEPS, "normal", "5, 0, 5", SEED,
                                    CFG).result[0]

    with caplog.at_level("WARNING", logger="delayed_negative"):
        maps = assert_explained_like_stock(patched, recording, latent, positive, negative, "normal", [0, 5], explain)
    assert [(track.branch, track.word) for track in maps.tracks if track.prompt != "empty"] == \
        [("positive", "man"), ("positive", "glasses"), ("unconditional", "glasses")]
    # its one-evaluation sampler reports its step, as a sampler the step clock follows
    assert not [record.getMessage() for record in caplog.records if record.name == "delayed_negative"]


@pytest.fixture(scope="module")
def family():
    spec = FAMILIES["sd3"]
    generator = torch.Generator().manual_seed(3)
    prompts = {name: spec.conditioning(generator) for name in ("positive", "negative", "empty")}
    return {"model": spec.build(), "latent": {"samples": torch.randn(spec.latent_shape, generator=generator)},
            **prompts}


def test_the_maps_equal_the_recorder_s_maps_of_stock_single_steps_on_an_sd3_dit(family):
    columns = {"positive": [("first", [0, 1]), ("later", [5, 9])], "negative": [("blur", [2, 3, 4])], "empty": []}
    recording = AttentionRecording(columns, family["empty"][0][0])
    patched = record_attention(family["model"], recording)
    assert_explained_like_stock(
        patched, recording, family["latent"], family["positive"], family["negative"], "simple", [1, 5],
        lambda probe: explain_latent(probe, recording, family["latent"], family["positive"], family["negative"], STEPS,
                                     "simple", "1, 5", SEED, CFG))


# The toy portraits model, measured on ComfyUI 0.3.75 (10 normal steps, cfg 5, seed 0): the positive
# prompt's "glasses", averaged over the 8 x 8 latent cells the drawn glasses touch, against the other
# cells. Over 16 random portraits with glasses: 1.0 times as strong at step 0 (under full noise the
# model cannot see them yet), 1.8 / 2.1 / 2.2 at steps 4 / 5 / 6, each portrait at least 1.4. This
# test's five (the example's portrait and four random ones): 1.0 at step 0, at least 1.55 at steps
# 4 to 6. The same portraits drawn without glasses measure alike: the model attends to the place
# glasses go.
MIDDLE_STEPS = (4, 5, 6)
MIN_RATIO_MIDDLE = 1.3



def on_and_off(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """[steps, items]: each map's mean over the 8 x 8 latent cells a 64 x 64 mask touches, divided
    by its mean over the other cells."""
    touched = torch.nn.functional.avg_pool2d(masks[:, None], 8)[:, 0] > 0.01
    return torch.tensor([[float(step_maps[item][touched[item]].mean() / step_maps[item][~touched[item]].mean())
                          for item in range(len(masks))] for step_maps in maps])


def test_on_the_toy_model_glasses_draws_the_attention_onto_the_drawn_glasses_at_the_middle_steps(toy):
    model, clip, vae = toy
    rng = np.random.default_rng(0)
    portraits = [EXAMPLE_PORTRAIT] + [Portrait(**{**random_portrait(rng).__dict__, "glasses": True}) for _ in range(4)]
    drawings = [draw(portrait) for portrait in portraits]
    example = pil_to_image(Image.open(EXAMPLE_PICTURE))  # as Load Image gives it
    images = torch.cat([example, torch.from_numpy(np.stack([drawing.image for drawing in drawings[1:]]))])
    # As the example wires it: the prompts typed once, their words read from the conditioning.
    positive, negative = (DelayedNegativeTextEncode.execute(clip, text).result[0] for text in (POSITIVE, NEGATIVE))
    patched, recording = RecordAttentionMaps.execute(model, clip, "", "", "glasses", "glasses", "all").result
    explain_steps = ", ".join(str(step) for step in (0, *MIDDLE_STEPS))
    maps = ExplainImage.execute(patched, recording, vae, images, positive, negative, 10, "normal", explain_steps, 0,
                                5.0).result[0]
    glasses = maps.maps[:, maps.track_index("glasses", "positive")]  # [steps, portraits, 8, 8]
    ratio = on_and_off(glasses, torch.from_numpy(np.stack([drawing.masks["glasses"] for drawing in drawings])))
    assert (ratio[1:] >= MIN_RATIO_MIDDLE).all(), ratio
    assert ratio[0].mean() < ratio[1:].mean(dim=1).min(), ratio  # under full noise it cannot see them yet


def test_steps_are_all_or_a_list_in_schedule_order():
    assert chosen_steps("all", 4) == [0, 1, 2, 3]
    assert chosen_steps(" ALL ", 2) == [0, 1]
    assert chosen_steps("6, 2-3, 2,", 10) == [2, 3, 6]


@pytest.mark.parametrize("text, message", [
    ("3, 10", r"Steps \[10\] are past the schedule of 10 steps: choose steps 0 to 9, or raise steps"),
    ("", "No step to explain: give 'all', or steps of the schedule such as 3, 6, 9"),
    (" , ", "No step to explain"),
    ("three", "'three' is not a step or a range of steps such as 6 or 2-5"),
])
def test_a_bad_step_list_says_what_to_give(text, message):
    with pytest.raises(ValueError, match=message):
        chosen_steps(text, 10)


def test_a_model_that_does_not_record_is_refused_before_any_evaluation(checkpoint):
    model, clip, vae = checkpoint
    _patched, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "", "", "all").result
    with pytest.raises(ValueError, match="does not record attention: connect the MODEL output of Record Attention"):
        ExplainImage.execute(model, recording, vae, portrait_image(), stock.encode(clip, POSITIVE),
                             stock.encode(clip, NEGATIVE), STEPS, "normal", "3", SEED, CFG)


def test_a_model_of_another_record_node_is_named(checkpoint):
    model, clip, vae = checkpoint
    patched, _ = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "", "", "all").result
    _, other_recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "", "", "all").result
    with pytest.raises(ValueError, match="connect the MODEL and the recording outputs of the same Record"):
        ExplainImage.execute(patched, other_recording, vae, portrait_image(), stock.encode(clip, POSITIVE),
                             stock.encode(clip, NEGATIVE), STEPS, "normal", "3", SEED, CFG)


def test_a_step_past_the_schedule_is_refused_before_any_evaluation(checkpoint):
    model, clip, vae = checkpoint
    patched, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, "", "", "all").result
    probe, calls = with_input_probe(patched)
    with pytest.raises(ValueError, match=r"Steps \[8\] are past the schedule of 8 steps"):
        ExplainImage.execute(probe, recording, vae, portrait_image(), stock.encode(clip, POSITIVE),
                             stock.encode(clip, NEGATIVE), STEPS, "normal", "2, 8", SEED, CFG)
    assert calls == []


def test_a_model_the_recorder_does_not_cover_stops_at_record_attention_maps():
    import comfy.supported_models
    from devtools.models.tiny_models import SD15_CHECKPOINT_UNET, in_memory_model

    # An SD1.5-family UNet without any cross-attention: nothing for the maps to watch.
    config = dict(SD15_CHECKPOINT_UNET, model_channels=32, channel_mult=[1], num_res_blocks=[1],
                  transformer_depth=[0], transformer_depth_output=[0, 0], transformer_depth_middle=-1)
    model = in_memory_model(comfy.supported_models.SD15, config)
    with pytest.raises(ValueError, match=r"Attention maps do not cover this model \(BaseModel\) yet"):
        record_attention(model, AttentionRecording({"positive": [], "negative": [], "empty": []}, None))
