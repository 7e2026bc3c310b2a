"""The recorder beside other packs' attention patches, in either order: no silent empty maps.

Other packs patch the points the recorder observes: an attn2 replace patch under ComfyUI's 2-part
key `(block, number)` or the 3-part `(block, number, transformer_index)` that IPAdapter uses (the
3-part key wins in ComfyUI's lookup), and the one attention override slot that ComfyUI's own
ModelAttentionBackend (0.33) writes. Each is placed before and after Record Attention Maps; in
every cell the other pack's patch runs at every layer as it does without the recorder, the
latent is bit-identical to the same stack without the recorder, and the maps equal the explicit
softmax of the queries and keys the model really computed (forward hooks on to_q / to_k, an
independent view), at every step.
"""

import pytest
import torch

import stock
from comfy.ldm.modules.attention import optimized_attention
from comfy_extras import nodes_model_advanced
from devtools.models.tiny_dit_models import FAMILIES

from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.attention.unet_hooks import cross_attention_blocks
from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
from instrumented import instrument
from test_auto_start import toy  # noqa: F401 (the toy model fixture)
from test_attention_recording import (COLUMNS, brute_force, capture_queries_and_keys, embeddings, run,
                                      single_resolution_sd15)

pytestmark = pytest.mark.model  # each test samples a model built in the test
HAS_ATTENTION_BACKEND = hasattr(nodes_model_advanced, "ModelAttentionBackend")


def attn2_patch(model, key_parts: int, calls: list):
    """A clone with an IPAdapter-style attn2 patch on every cross-attention block: ComfyUI's own
    attention, scaled so that the image shows it ran; each call appends its block to `calls`."""
    patched = model.clone()

    def patch(q, k, v, extra_options):
        calls.append(extra_options["block"])
        return optimized_attention(q, k, v, extra_options["n_heads"]) * 0.9

    for block in cross_attention_blocks(model.get_model_object("diffusion_model")):
        patched.set_model_attn2_replace(patch, *block, *((0,) if key_parts == 3 else ()))
    return patched


def seen_call(args, kwargs):
    """(q, k, heads, cond_or_uncond), heads first, of an attention call an override receives (the
    form test_dit_attention.reference_maps reads)."""
    q, k = args[0], args[1]
    heads = args[3] if len(args) > 3 else kwargs["heads"]
    if not kwargs.get("skip_reshape", False):
        q, k = (t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k))
    return q.detach().clone(), k.detach().clone(), list(kwargs["transformer_options"]["cond_or_uncond"])


def attention_override(model, calls: list):
    """A clone with another pack's attention override: ComfyUI's function, output nudged; each
    call appends what it saw to `calls`."""
    patched = model.clone()

    def override(func, *args, **kwargs):
        calls.append(seen_call(args, kwargs))
        return func(*args, **kwargs) * 0.95

    patched.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = override
    return patched


def attention_backend(model, calls: list):
    """ComfyUI's own ModelAttentionBackend node (0.33), counted through the function it installs."""
    patched = nodes_model_advanced.ModelAttentionBackend().patch(model, "pytorch attention")[0]
    installed = patched.model_options["transformer_options"]["optimized_attention_override"]

    def counted(func, *args, **kwargs):
        calls.append(seen_call(args, kwargs))
        return installed(func, *args, **kwargs)

    patched.model_options["transformer_options"]["optimized_attention_override"] = counted
    return patched


OTHER_PACKS = {
    "attn2 patch, 2-part key": lambda model, calls: attn2_patch(model, 2, calls),
    "attn2 patch, 3-part key (IPAdapter)": lambda model, calls: attn2_patch(model, 3, calls),
    "attention override": attention_override,
}
if HAS_ATTENTION_BACKEND:
    OTHER_PACKS["ModelAttentionBackend"] = attention_backend


def stacked(model, other, recording, order):
    if order == "other pack before Record":
        return record_attention(other(model), recording)
    return other(record_attention(model, recording))


@pytest.mark.parametrize("order", ["other pack before Record", "other pack after Record"])
@pytest.mark.parametrize("other_pack", sorted(OTHER_PACKS))
def test_unet_maps_latent_and_the_other_patch_are_all_kept(other_pack, order):
    model, prompts = single_resolution_sd15(), embeddings()
    other = OTHER_PACKS[other_pack]
    alone_calls, with_calls = [], []
    alone = run(other(model, alone_calls), prompts)
    assert not torch.equal(alone, run(model, prompts)), f"{other_pack} changes nothing: the cell proves nothing"

    recording = AttentionRecording(COLUMNS, prompts["empty"])
    log = []
    patched = instrument(stacked(model, lambda m: other(m, with_calls), recording, order), prompts, log)
    with capture_queries_and_keys(patched) as captured:
        latent = run(patched, prompts)
    assert torch.equal(latent, alone)
    assert len(with_calls) == len(alone_calls) > 0, "the other pack's patch stopped running"
    assert_positive_maps_equal_the_reference(recording, log, captured)


def assert_positive_maps_equal_the_reference(recording, log, captured):
    maps = recording.snapshot()
    layers = len(captured) // len(log)
    track = next(i for i, t in enumerate(maps.tracks) if t.prompt == "positive")
    columns = dict(COLUMNS["positive"])[maps.tracks[track].word]
    for step, evaluation in enumerate(log):  # euler: one evaluation per step, both branches batched
        chunk = evaluation.chunks.index(0)
        expected = sum(brute_force(q[chunk:chunk + 1], k[chunk:chunk + 1], heads, columns)
                       for q, k, heads in captured[step * layers:(step + 1) * layers]) / layers
        torch.testing.assert_close(maps.maps[step, track, 0].double(), expected.reshape(8, 8), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("order", ["other pack before Record", "other pack after Record"])
def test_ipadapter_style_patch_on_the_generated_checkpoint_with_the_stock_ksampler(checkpoint, order):
    """The issue's own reproduction: a 3-part key patch returning ComfyUI's own attention, two
    steps of the stock KSampler, Record Attention Maps then Collect."""
    model, clip, _vae = checkpoint

    def own_attention(q, k, v, extra_options):
        return optimized_attention(q, k, v, extra_options["n_heads"])

    def other(m):
        patched = m.clone()
        for block in cross_attention_blocks(m.get_model_object("diffusion_model")):
            patched.set_model_attn2_replace(own_attention, *block, 0)
        return patched

    positive_prompt, negative_prompt = "a photo of a man", "blurry"
    positive, negative = stock.encode(clip, positive_prompt), stock.encode(clip, negative_prompt)
    latent = stock.empty_latent()
    model_in = other(model) if order == "other pack before Record" else model
    recorded, recording = RecordAttentionMaps.execute(model_in, clip, positive_prompt, negative_prompt, "man, photo",
                                                      "blurry", "all").result
    model_out = recorded if order == "other pack before Record" else other(recorded)
    sampled = stock.ksampler(model_out, 3, 2, 5.0, "euler", "normal", positive, negative, latent)
    maps = CollectAttentionMaps.execute(recording, sampled).result[0]
    positive_tracks = [i for i, track in enumerate(maps.tracks) if track.prompt == "positive"]
    assert torch.isfinite(maps.maps[:, positive_tracks]).all()
    assert torch.equal(sampled["samples"], stock.ksampler(other(model), 3, 2, 5.0, "euler", "normal", positive,
                                                          negative, latent)["samples"])


DIT_OTHER_PACKS = {"attention override": attention_override}
if HAS_ATTENTION_BACKEND:
    DIT_OTHER_PACKS["ModelAttentionBackend"] = attention_backend


@pytest.mark.parametrize("order", ["other pack before Record", "other pack after Record"])
@pytest.mark.parametrize("other_pack", sorted(DIT_OTHER_PACKS))
def test_dit_maps_and_the_other_override_are_both_kept(other_pack, order):
    """On a DiT (SD3's MMDiT) the recorder and the other node share one override slot."""
    from test_dit_attention import reference_maps, sample

    spec = FAMILIES["sd3"]
    generator = torch.Generator().manual_seed(3)
    family = {"name": "sd3", "model": spec.build(), "latent": {"samples": torch.zeros(spec.latent_shape)},
              **{name: spec.conditioning(generator) for name in ("positive", "negative", "empty")}}
    other = DIT_OTHER_PACKS[other_pack]
    alone_calls, with_calls = [], []
    alone = sample(family, other(family["model"], alone_calls))
    recording = AttentionRecording(dit_columns(), family["empty"][0][0])
    latent = sample(family, stacked(family["model"], lambda m: other(m, with_calls), recording, order))
    assert torch.equal(latent, alone)
    assert len(with_calls) == len(alone_calls) > 0, "the other node's override stopped running"
    maps = recording.snapshot()
    expected = reference_maps(family, with_calls, frames=1)  # the queries and keys the other node saw
    for step in range(maps.maps.shape[0]):
        ids = [i for i, track in enumerate(maps.tracks) if track.prompt == "positive"]
        torch.testing.assert_close(maps.maps[step, ids].double(), expected[("positive", step)], rtol=1e-4,
                                   atol=1e-6)


def dit_columns():
    from test_dit_attention import COLUMNS as DIT_COLUMNS
    return DIT_COLUMNS


def test_the_automatic_start_watches_through_an_ipadapter_style_patch(toy):
    """The automatic start's watch rides on the same cross-attention hook: with a 3-part key patch
    returning ComfyUI's own attention on the model, it measures the same strengths and picks the
    same step as without it."""
    from test_auto_start import ksampler

    def own_attention(q, k, v, extra_options):
        return optimized_attention(q, k, v, extra_options["n_heads"])

    patched = toy["model"].clone()
    for block in cross_attention_blocks(patched.get_model_object("diffusion_model")):
        patched.set_model_attn2_replace(own_attention, *block, 0)
    plain_latent, plain_step = ksampler(toy, "euler", 0, "auto")
    patched_latent, patched_step = ksampler({**toy, "model": patched}, "euler", 0, "auto")
    assert patched_step == plain_step < 6  # 6: the latest allowed step, where a blind watch ends up
    assert torch.equal(patched_latent["samples"], plain_latent["samples"])
