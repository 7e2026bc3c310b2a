"""Attention maps on the DiT families: SD3.x (MMDiT), Flux with CFG, Chroma, Flux.2, Qwen-Image,
Z-Image and Wan 2.1 video, each a small in-memory model of ComfyUI's own classes
(devtools/models/tiny_dit_models.py), sampled by KSampler (Delayed Negative) with the recording on
the model.

The reference takes every attention call's queries and keys from its own attention override
(the arguments ComfyUI hands the attention function: after RoPE and the q/k norms), keeps the
calls whose keys hold the text (12 text tokens first and 16 image tokens per frame after them in
joint attention; the 12 text tokens alone in Wan's cross-attention; Flux.2 and Z-Image lay the
text out their own way, TEXT_IN_SEQUENCE), writes softmax(q·kᵀ/√d) out per head in float64 over
the *whole* key axis, sums the word's columns over the image queries, averages the heads, lays
the 4 x 4 image tokens of each frame on the latent (each token covers a 2 x 2 patch, Flux.2's a
1 x 1) and averages the calls of each step. Conditioning tensors are random ones of each family's
text width, so the words' columns are written by hand.
"""

import math

import pytest
import torch

from delayed_negative.attention.dit_hooks import TextAttentionCall
from delayed_negative.attention.dit_layout import TokenLayout, evaluation_layout
from delayed_negative.attention.joint_share import text_probabilities
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from devtools.models.tiny_dit_models import FAMILIES, TEXT_TOKENS, tiny_auraflow, tiny_flux2, tiny_sd3, tiny_z_image

SEED, STEPS, CFG, START = 11, 4, 4.0, 2
COLUMNS = {"positive": [("first", [0, 1]), ("later", [5, 9])], "negative": [("blur", [2, 3, 4])],
           "empty": [("<end>", [1])]}
TEXT_CALLS_PER_EVALUATION = {"sd3": 2, "flux": 2, "chroma": 2, "qwen_image": 1, "wan21": 1,  # blocks attending to the text
                             "flux2": 2, "z_image": 1}  # Z-Image: its refiners see the caption or the image alone
JOINT = {"sd3": True, "flux": True, "chroma": True, "qwen_image": True, "wan21": False, "flux2": True, "z_image": True}
# Joint sequences that are not [12 text tokens, image]: (text tokens before the image, the prompt's column 0 among
# them, tokens after the image), as ComfyUI's model code lays them out: model_base.Flux2 pads the conditioning in
# front with zeros to 512 tokens; NextDiT pads the caption and the 16 image tokens with pad tokens to whole 32s.
TEXT_IN_SEQUENCE = {"flux2": (512, 512 - TEXT_TOKENS, 0), "z_image": (32, 0, 16)}
PATCH = {"flux2": 1}  # latent pixels per image token side; 2 elsewhere


@pytest.fixture(scope="module", params=list(FAMILIES), ids=list(FAMILIES))
def family(request):
    spec = FAMILIES[request.param]
    generator = torch.Generator().manual_seed(3)
    prompts = {name: spec.conditioning(generator) for name in ("positive", "negative", "empty")}
    return {"name": request.param, "model": spec.build(), "latent": {"samples": torch.zeros(spec.latent_shape)},
            **prompts}


def new_recording(family):
    return AttentionRecording(COLUMNS, family["empty"][0][0])


def sample(family, model, sampler="euler", start=START):
    return DelayedNegativeKSampler.execute(
        model, SEED, STEPS, CFG, sampler, "simple", family["positive"], family["negative"], family["latent"], 1.0,
        start, -1.0, "step", "early conditioning", None, family["empty"]).result[0]["samples"]


def capture_attention(model):
    """A clone whose every attention call appends (q, k, heads, cond_or_uncond), heads first."""
    clone, calls = model.clone(), []

    def override(func, *args, **kwargs):
        q, k = args[0], args[1]
        heads = args[3] if len(args) > 3 else kwargs["heads"]
        if not kwargs.get("skip_reshape", False):
            q, k = (t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k))
        calls.append((q.detach().clone(), k.detach().clone(), list(kwargs["transformer_options"]["cond_or_uncond"])))
        return func(*args, **kwargs)

    clone.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = override
    return clone, calls


def reference_maps(family, calls, frames):
    """{prompt: [steps, words, frames, 8, 8]}: the explicit softmax of every text call, by step (euler:
    one evaluation per step, the calls of an evaluation in order)."""
    joint = JOINT[family["name"]]
    tokens_per_frame = 16
    image_tokens = frames * tokens_per_frame
    text, prompt_at, after_image = TEXT_IN_SEQUENCE.get(family["name"], (TEXT_TOKENS, 0, 0))
    lengths = (text + image_tokens + after_image,) * 2 if joint else (image_tokens, TEXT_TOKENS)
    text_calls = [c for c in calls if (c[0].shape[2], c[1].shape[2]) == lengths]
    per_evaluation = TEXT_CALLS_PER_EVALUATION[family["name"]]
    assert len(text_calls) == STEPS * per_evaluation
    patch = PATCH.get(family["name"], 2)
    sums = {}
    for number, (q, k, chunks) in enumerate(text_calls):
        step = number // per_evaluation
        first = text if joint else 0
        q_image = q[:, :, first:first + image_tokens].double()
        scores = q_image @ k.double().transpose(-1, -2) / math.sqrt(q.shape[-1])
        probabilities = torch.softmax(scores, dim=-1)
        for index, chunk in enumerate(chunks):
            prompt = "positive" if chunk == 0 else ("negative" if step >= START else "empty")
            words = []
            for _word, columns in COLUMNS[prompt]:
                keys = [prompt_at + c for c in columns]
                share = probabilities[index:index + 1, :, :, keys].sum(-1).mean(1)  # [1, image tokens]
                grid = share.reshape(frames, 4, 4).repeat_interleave(patch, 1).repeat_interleave(patch, 2)
                words.append(grid)
            sums.setdefault((prompt, step), []).append(torch.stack(words))
    return {key: torch.stack(value).mean(0) for key, value in sums.items()}


def test_maps_equal_an_explicit_softmax_over_the_whole_joint_sequence(family):
    recording = new_recording(family)
    sample(family, record_attention(family["model"], recording))
    maps = recording.snapshot()
    latent = family["latent"]["samples"]
    frames = latent.shape[2] if latent.ndim == 5 else 1
    assert maps.frames == frames and maps.maps.shape[2:] == (frames, *latent.shape[-2:])
    clone, calls = capture_attention(family["model"])
    sample(family, clone)
    reference = reference_maps(family, calls, frames)
    for (prompt, step), expected in reference.items():
        ids = [i for i, track in enumerate(maps.tracks) if track.prompt == prompt]
        got = maps.maps[step, ids].double()
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6, msg=f"{prompt} at step {step}")
    assert len(reference) == 2 * STEPS  # each step: the positive and one unconditional prompt


def test_the_latent_is_bit_identical(family):
    recording = new_recording(family)
    assert torch.equal(sample(family, record_attention(family["model"], recording)), sample(family, family["model"]))


@pytest.mark.parametrize("sampler", ["heun", "dpmpp_2m"])
def test_each_step_counts_the_text_blocks_times_the_sampler_s_evaluations(family, sampler):
    recording = new_recording(family)
    sample(family, record_attention(family["model"], recording), sampler)
    evaluations = [2, 2, 2, 1] if sampler == "heun" else [1] * STEPS
    layers = TEXT_CALLS_PER_EVALUATION[family["name"]]
    for track, counts in zip(recording.tracks, recording.counts.T.tolist()):
        expected = [layers * e if (track.prompt != "empty" or s < START) and (track.prompt != "negative" or s >= START)
                    else 0 for s, e in enumerate(evaluations)]
        assert counts == expected, track


def test_branches_apart_the_empty_prompt_before_the_start_and_the_negative_after(family):
    recording = new_recording(family)
    sample(family, record_attention(family["model"], recording))
    maps = recording.snapshot()
    by_prompt = {track.prompt: index for index, track in enumerate(maps.tracks)}
    negative, empty = maps.maps[:, by_prompt["negative"]], maps.maps[:, by_prompt["empty"]]
    assert negative[:START].isnan().all() and not negative[START:].isnan().any()
    assert not empty[:START].isnan().any() and empty[START:].isnan().all()
    assert not maps.maps[:, by_prompt["positive"]].isnan().any()


def test_the_input_model_is_left_as_it_was(family):
    model = family["model"]
    before = dict(model.model_options.get("transformer_options", {}))
    record_attention(model, new_recording(family))
    assert model.model_options.get("transformer_options", {}) == before


def test_a_dit_asked_for_unet_layers_is_told_to_record_all(family):
    with pytest.raises(ValueError, match="is a DiT: it has no input, middle or output blocks. Set layers to 'all'"):
        record_attention(family["model"], new_recording(family), "input blocks")


def test_a_dit_family_not_mapped_is_named():
    auraflow = tiny_auraflow()
    with pytest.raises(ValueError, match=r"Attention maps do not cover this model \(AuraFlow\) yet"):
        record_attention(auraflow, AttentionRecording(COLUMNS, None))


def test_which_calls_are_the_image_attending_to_the_text():
    joint = TokenLayout(True, 0, 12, (1, 2, 2), (1, 8, 8))  # 12 text tokens, 16 image tokens
    assert joint.attends_to_text(28, 28)
    assert joint.attends_to_text(28 + 16, 28 + 16)  # a reference image's tokens after the image (Kontext, edits)
    assert not joint.attends_to_text(16, 16)  # SD3.5's image-only second attention
    assert not joint.attends_to_text(28, 12)
    registers = TokenLayout(True, 4, 12, (1, 2, 2), (1, 8, 8))
    assert registers.image_start == 16 and registers.attends_to_text(32, 32) and not registers.attends_to_text(28, 28)
    cross = TokenLayout(False, 0, 12, (1, 2, 2), (3, 8, 8))  # Wan: 48 image tokens over 3 frames
    assert cross.attends_to_text(48, 12)
    assert not cross.attends_to_text(48, 48)  # its self-attention
    assert not cross.attends_to_text(48, 257)  # an image prompt's CLIP tokens (Wan image-to-video)
    # a video exactly as long as its text: self- and cross-attention look alike, and neither is taken
    same = TokenLayout(False, 0, 48, (1, 2, 2), (3, 8, 8))
    assert not same.attends_to_text(48, 48)
    # Z-Image: 12 caption tokens and 16 image tokens, each padded to 32
    z_image = TokenLayout(True, 0, 12, (1, 2, 2), (1, 8, 8), text_padding=20, image_padding=16)
    assert z_image.image_start == 32 and z_image.attends_to_text(64, 64)
    assert not z_image.attends_to_text(32, 32)  # its caption refiner, or its image refiner
    assert not z_image.attends_to_text(64 + 32, 64 + 32)  # an omni edit: reference images before the image
    flux2 = TokenLayout(True, 0, 512, (1, 1, 1), (1, 4, 4), prompt_at_text_end=True)  # a prompt padded in front
    assert flux2.prompt_offset(12) == 500 and flux2.prompt_offset(512) == flux2.prompt_offset(None) == 0
    assert joint.prompt_offset(12) == 0
    odd = TokenLayout(True, 0, 12, (1, 2, 2), (1, 7, 9))  # padded up to whole patches: 4 x 5 tokens
    assert odd.grid == (1, 4, 5) and odd.image_tokens == 20
    values = torch.arange(20.0).reshape(1, 1, 20)
    latent = odd.to_latent(values)[0, 0]
    assert latent.shape == (7, 9) and latent[0, 0] == latent[1, 1] == 0 and latent[6, 8] == 19 and latent[2, 0] == 5


def test_each_family_s_layout_is_read_from_its_model():
    z_image = evaluation_layout(tiny_z_image())  # NextDiT's pad_tokens_multiple: 32
    assert z_image(12, (1, 8, 8)) == TokenLayout(True, 0, 12, (1, 2, 2), (1, 8, 8), text_padding=20, image_padding=16)
    assert z_image(64, (1, 16, 16)) == TokenLayout(True, 0, 64, (1, 2, 2), (1, 16, 16), text_padding=0, image_padding=0)
    assert evaluation_layout(tiny_flux2())(512, (1, 4, 4)) == TokenLayout(True, 0, 512, (1, 1, 1), (1, 4, 4),
                                                                          prompt_at_text_end=True)
    # the families mapped before keep their layout: registers first, anything after the image
    assert evaluation_layout(tiny_sd3(registers=2))(12, (1, 8, 8)) == TokenLayout(True, 2, 12, (1, 2, 2), (1, 8, 8))


# --- the pieces, on known tensors ------------------------------------------------------------------------------

def explicit_probabilities(queries, keys, columns, mask=None):
    scores = queries.double() @ keys.double().transpose(-1, -2) / math.sqrt(queries.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.double()
    return torch.softmax(scores, dim=-1)[..., columns].mean(1)


def test_the_share_equals_an_explicit_softmax_for_more_columns_than_a_head_is_wide_and_with_masks():
    generator = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(2, 3, 5, 4, generator=generator), torch.randn(2, 3, 11, 4, generator=generator)
    columns = torch.tensor([0, 2, 3, 5, 6, 7, 9, 10, 1])  # 9 columns, heads 4 wide: three groups
    expected = explicit_probabilities(queries, keys, columns)
    got = text_probabilities(queries, keys, columns)
    assert got.shape == (2, 5, 9)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)
    keep = torch.rand(11, generator=generator) > 0.3  # ComfyUI's [keys] mask, True = attend
    keep[0] = True
    torch.testing.assert_close(text_probabilities(queries, keys, columns, keep).double(),
                               explicit_probabilities(queries, keys, columns, keep.expand(2, 3, 5, 11)),
                               rtol=1e-5, atol=1e-7)
    additive = torch.randn(2, 5, 11, generator=generator)  # [batch, queries, keys]
    torch.testing.assert_close(text_probabilities(queries, keys, columns, additive).double(),
                               explicit_probabilities(queries, keys, columns, additive[:, None]), rtol=1e-5, atol=1e-7)


def test_an_attention_call_is_read_whichever_way_comfyui_passes_its_arguments():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 6, 8, generator=generator) for _ in range(3))  # [batch, tokens, heads x dim]
    mask = torch.ones(6, dtype=torch.bool)
    heads_first = q.reshape(2, 6, 2, 4).transpose(1, 2)
    for args, kwargs in (((q, k, v, 2), {}), ((q, k, v), {"heads": 2}), ((q, k, v, 2, mask), {}),
                         ((q, k, v, 2, mask, None), {}),  # attn_precision too, still without skip_reshape
                         ((q, k, v, 2), {"mask": mask, "transformer_options": {"x": 1}})):
        call = TextAttentionCall(args, kwargs)
        assert torch.equal(call.queries, heads_first) and call.keys.shape == (2, 2, 6, 4)
        assert call.mask is (mask if len(args) > 4 or "mask" in kwargs else None)
        assert call.options == kwargs.get("transformer_options", {})
    for args, kwargs in (((heads_first, heads_first, heads_first, 2), {"skip_reshape": True}),
                         ((heads_first, heads_first, heads_first, 2, None, None, True), {})):
        assert TextAttentionCall(args, kwargs).queries is heads_first  # Flux and Qwen-Image: heads first already


def test_register_tokens_come_before_the_text():
    model = tiny_sd3(registers=2)
    generator = torch.Generator().manual_seed(3)
    spec = FAMILIES["sd3"]
    family = {"name": "sd3", "model": model, "latent": {"samples": torch.zeros(spec.latent_shape)},
              **{name: spec.conditioning(generator) for name in ("positive", "negative", "empty")}}
    recording = new_recording(family)
    sample(family, record_attention(model, recording))
    clone, calls = capture_attention(model)
    sample(family, clone)
    lengths = {(q.shape[2], k.shape[2]) for q, k, _ in calls}
    assert (2 + TEXT_TOKENS + 16,) * 2 in lengths
    q, k, chunks = next(c for c in calls if c[0].shape[2] == 2 + TEXT_TOKENS + 16)
    probabilities = torch.softmax(q[:, :, 2 + TEXT_TOKENS:].double() @ k.double().transpose(-1, -2)
                                  / math.sqrt(q.shape[-1]), dim=-1)
    row = chunks.index(0)  # the positive branch's row
    first_word = probabilities[row, :, :, [2 + c for c in COLUMNS["positive"][0][1]]].sum(-1).mean(0)
    first_call = first_word.reshape(4, 4).repeat_interleave(2, 0).repeat_interleave(2, 1)
    # step 0 (euler: one evaluation) averages the two blocks' calls
    second = [c for c in calls if c[0].shape[2] == 2 + TEXT_TOKENS + 16][1]
    q2, k2 = second[0], second[1]
    probabilities2 = torch.softmax(q2[:, :, 2 + TEXT_TOKENS:].double() @ k2.double().transpose(-1, -2)
                                   / math.sqrt(q2.shape[-1]), dim=-1)
    second_call = probabilities2[row, :, :, [2 + c for c in COLUMNS["positive"][0][1]]].sum(-1).mean(0)
    expected = (first_call + second_call.reshape(4, 4).repeat_interleave(2, 0).repeat_interleave(2, 1)) / 2
    torch.testing.assert_close(recording.snapshot().maps[0, 0, 0].double(), expected, rtol=1e-4, atol=1e-6)


def test_another_packs_attention_override_still_runs_and_its_output_is_returned(family):
    seen = []

    def other_pack(func, *args, **kwargs):
        seen.append(args[0].shape)
        return func(*args, **kwargs) * 1.0  # a different tensor object, the same values

    model = family["model"].clone()
    model.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = other_pack
    plain = sample(family, model)
    calls_without = len(seen)
    recording = new_recording(family)
    assert torch.equal(sample(family, record_attention(model, recording)), plain)
    assert len(seen) == 2 * calls_without and not recording.snapshot().maps[:, 0].isnan().any()


MASK_SHAPES = {  # ComfyUI's attention mask forms, for 2 chunks x batch 2 = 4 rows and 9 joint tokens
    "queries x keys": (9, 9), "rows x queries x keys": (4, 9, 9), "rows x 1 x keys": (4, 1, 9),
    "one mask for every row": (1, 9, 9),
    "rows x heads x queries x keys": (4, 1, 9, 9)}


@pytest.mark.parametrize("shape", MASK_SHAPES.values(), ids=MASK_SHAPES.keys())
def test_a_masked_joint_call_with_reference_tokens_is_recorded_from_the_image_rows_only(shape):
    """One attention call given by hand: 2 chunks (positive, negative) of batch 2, 3 text tokens, a 2 x 2
    token image (4 x 4 latent), 2 reference-image tokens after it, and an additive mask over the joint
    sequence in each of ComfyUI's shapes; the maps are the explicit masked softmax of the image rows."""
    generator = torch.Generator().manual_seed(0)
    batch, heads, dim, text, image, refs = 2, 2, 4, 3, 4, 2
    length = text + image + refs
    recording = AttentionRecording({"positive": [("a", [0, 2])], "negative": [("b", [1])], "empty": []}, None)
    recording.begin_run(None, torch.tensor([1.0, 0.0]), (batch, 16, 4, 4))
    queries, keys = torch.randn(2, 2 * batch, heads, length, dim, generator=generator)
    mask = torch.randn(*shape, generator=generator)
    options = {"cond_or_uncond": [0, 1], "uuids": [None, None]}
    call = TextAttentionCall((queries, keys, keys, heads, mask), {"skip_reshape": True, "transformer_options": options})
    recording.add_text_attention(call, TokenLayout(True, 0, text, (1, 2, 2), (1, 4, 4)))
    maps = recording.snapshot().maps[0]  # [tracks, items, 4, 4]
    full = mask if mask.ndim == 4 else mask[:, None] if mask.ndim == 3 else mask[None, None]
    scores = queries.double() @ keys.double().transpose(-1, -2) / math.sqrt(dim) + full.double()
    probabilities = torch.softmax(scores, dim=-1)[:, :, text:text + image]  # the image rows
    for track, (chunk, columns) in enumerate(((0, [0, 2]), (1, [1]))):
        rows = probabilities[chunk * batch:(chunk + 1) * batch, :, :, columns].sum(-1).mean(1)  # [batch, 4]
        expected = rows.reshape(batch, 2, 2).repeat_interleave(2, 1).repeat_interleave(2, 2)
        torch.testing.assert_close(maps[track].double(), expected, rtol=1e-5, atol=1e-7)


def test_prompts_padded_in_front_are_read_at_the_end_of_the_text():
    """Flux.2's model pads each prompt's conditioning in front up to the text's length (8 here): a positive of
    3 tokens and a negative of 5 in one call, each word's columns moved by its own prompt's padding."""
    from comfy.conds import CONDRegular

    generator = torch.Generator().manual_seed(1)
    recording = AttentionRecording({"positive": [("a", [0, 2])], "negative": [("b", [1])], "empty": []}, None)
    recording.begin_run(None, torch.tensor([1.0, 0.0]), (1, 128, 2, 2))
    conds = []
    for uuid, tokens in (("p", 3), ("n", 5)):
        prompt = torch.randn(1, tokens, 4, generator=generator)
        padded = torch.nn.functional.pad(prompt, (0, 0, 8 - tokens, 0))
        conds.append([{"uuid": uuid, "cross_attn": prompt, "model_conds": {"c_crossattn": CONDRegular(padded)}}])
    recording.name_conds(conds)
    text, image, heads, dim = 8, 4, 2, 4
    queries, keys = torch.randn(2, 2, heads, text + image, dim, generator=generator)
    options = {"cond_or_uncond": [0, 1], "uuids": ["p", "n"]}
    call = TextAttentionCall((queries, keys, keys, heads), {"skip_reshape": True, "transformer_options": options})
    recording.add_text_attention(call, TokenLayout(True, 0, text, (1, 1, 1), (1, 2, 2), prompt_at_text_end=True))
    maps = recording.snapshot().maps[0]  # [tracks, items, 2, 2]
    probabilities = torch.softmax(queries.double() @ keys.double().transpose(-1, -2) / math.sqrt(dim), -1)[:, :, text:]
    for track, (row, keys_of_word) in enumerate(((0, [5, 7]), (1, [4]))):  # columns [0, 2] + 5, [1] + 3
        expected = probabilities[row:row + 1, :, :, keys_of_word].sum(-1).mean(1).reshape(1, 2, 2)
        torch.testing.assert_close(maps[track].double(), expected, rtol=1e-5, atol=1e-7)
    assert recording.prompt_of_cond == {"p": "positive", "n": "negative"}

