"""Attention recording on the real ComfyUI: exact maps, exact steps, branches apart, no change to the image."""

import contextlib

import pytest
import torch

import nodes
from devtools.models.tiny_models import SD15_CHECKPOINT_UNET, in_memory_model, tiny_sdxl

import stock
from delayed_negative.attention.maps import AttentionMaps
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.unet_hooks import cross_attention_blocks
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.samplers.ksampler import delayed_negative_ksampler
from delayed_negative.samplers.negative_window import NegativeTiming
from instrumented import instrument

STEPS = 6


def single_resolution_sd15():
    """An SD1.5-architecture UNet whose cross-attention layers all work at the latent's own
    resolution, so the brute-force reference needs no resizing."""
    import comfy.supported_models

    config = dict(SD15_CHECKPOINT_UNET, model_channels=32, channel_mult=[1], num_res_blocks=[1],
                  transformer_depth=[1], transformer_depth_output=[1, 1], transformer_depth_middle=-1)
    return in_memory_model(comfy.supported_models.SD15, config, seed=5)


def embeddings(width=768, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(1, 77, width, generator=generator) * 3 for name in ("positive", "negative", "empty")}


COLUMNS = {"positive": [("man", [5]), ("photo", [2, 3])], "negative": [("mustache", [1])], "empty": [("<end>", [1])]}


def run(model, prompts, sampler="euler", start=2, batch=1):
    conds = {name: [[tensor, {}]] for name, tensor in prompts.items()}
    latent = {"samples": torch.zeros(batch, 4, 8, 8)}
    return delayed_negative_ksampler(model, 11, STEPS, 5.0, sampler, "karras", conds["positive"], conds["negative"],
                                     latent, NegativeTiming(start), conds["empty"])["samples"]


@contextlib.contextmanager
def capture_queries_and_keys(model):
    """Forward hooks on every cross-attention's to_q / to_k while in the block: an independent view of
    q and k. Yields the list each call appends (q, k, heads) to."""
    calls, handles = [], []
    for module in model.get_model_object("diffusion_model").modules():
        if hasattr(module, "attn2"):
            pending = {}
            handles.append(module.attn2.to_q.register_forward_hook(
                lambda _m, _i, out, pending=pending: pending.__setitem__("q", out.detach().clone())))
            handles.append(module.attn2.to_k.register_forward_hook(
                lambda _m, _i, out, pending=pending, heads=module.attn2.heads: calls.append(
                    (pending.pop("q"), out.detach().clone(), heads))))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def brute_force(q, k, heads, columns):
    """softmax(q·kᵀ/√d) written out per head, then the word's columns summed and heads averaged."""
    dim = q.shape[-1] // heads
    total = 0
    for head in range(heads):
        q_head = q[..., head * dim:(head + 1) * dim].double()
        k_head = k[..., head * dim:(head + 1) * dim].double()
        scores = q_head @ k_head.transpose(-1, -2) / dim ** 0.5
        probabilities = torch.exp(scores - scores.amax(-1, keepdim=True))
        probabilities = probabilities / probabilities.sum(-1, keepdim=True)
        total = total + probabilities[..., columns].sum(-1)
    return total / heads


def test_recorded_maps_equal_a_brute_force_softmax_reference():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    patched = record_attention(model, recording)
    log = []
    instrumented = instrument(patched, prompts, log)
    with capture_queries_and_keys(instrumented) as calls:
        run(instrumented, prompts, "euler", start=2)
    maps = recording.snapshot()
    layers = len(calls) // len(log)
    assert layers == len(cross_attention_blocks(model.get_model_object("diffusion_model"))) >= 2
    for step, evaluation in enumerate(log):  # euler: one evaluation per step, cond and uncond batched
        chunk_prompts = {"positive": evaluation.chunks.index(0), evaluation.uncond: evaluation.chunks.index(1)}
        for track, record in enumerate(maps.tracks):
            chunk = chunk_prompts.get(record.prompt)
            if chunk is None:
                assert torch.isnan(maps.maps[step, track]).all()
                continue
            columns = dict(COLUMNS[record.prompt])[record.word]
            expected = sum(brute_force(q[chunk:chunk + 1], k[chunk:chunk + 1], heads, columns)
                           for q, k, heads in calls[step * layers:(step + 1) * layers]) / layers
            torch.testing.assert_close(maps.maps[step, track, 0].double(), expected.reshape(8, 8), rtol=1e-5,
                                       atol=1e-7)


def test_recording_leaves_the_latent_bit_identical():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    for sampler in ("euler", "dpmpp_2m_sde"):
        assert torch.equal(run(record_attention(model, recording), prompts, sampler), run(model, prompts, sampler))


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpm_2_ancestral"])
def test_each_step_averages_exactly_its_own_evaluations(sampler):
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    log = []
    run(instrument(record_attention(model, recording), prompts, log), prompts, sampler)
    layers = len(cross_attention_blocks(model.get_model_object("diffusion_model")))
    evaluations_per_step = torch.bincount(torch.tensor([e.sampler_step for e in log]), minlength=STEPS)
    positive = [i for i, track in enumerate(recording.tracks) if track.prompt == "positive"]
    assert torch.equal(recording.counts[:, positive[0]], (evaluations_per_step * layers).float())
    if sampler != "euler":
        assert evaluations_per_step.max() == 2  # second-order: two evaluations in one step, one map


def test_unconditional_branch_shows_the_empty_prompt_before_the_switch_and_the_negative_after():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    run(record_attention(model, recording), prompts, "heun", start=3)
    present = ~recording.snapshot().strength()[:, :, 0].isnan()
    by_prompt = {track.prompt: present[:, i] for i, track in enumerate(recording.tracks)}
    steps = torch.arange(STEPS)
    assert torch.equal(by_prompt["negative"], steps >= 3)
    assert torch.equal(by_prompt["empty"], steps < 3)
    assert by_prompt["positive"].all()


def test_batch_items_are_kept_apart():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    run(record_attention(model, recording), prompts, "euler", batch=2)
    maps = recording.snapshot().maps
    assert maps.shape[2] == 2
    assert not torch.allclose(maps[:, 0, 0], maps[:, 0, 1])  # different noise, different maps


def test_sdxl_architecture_records_every_cross_attention_layer():
    model = tiny_sdxl()
    prompts = embeddings(width=2048)
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    blocks = cross_attention_blocks(model.get_model_object("diffusion_model"))
    assert ("middle", 0) in blocks and any(name == "input" for name, _ in blocks)
    pooled = torch.zeros(1, 1280)
    conds = {name: [[tensor, {"pooled_output": pooled}]] for name, tensor in prompts.items()}
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    with_recording = delayed_negative_ksampler(record_attention(model, recording), 1, 4, 5.0, "euler", "normal",
                                               conds["positive"], conds["negative"], latent, NegativeTiming(2),
                                               conds["empty"])["samples"]
    without = delayed_negative_ksampler(model, 1, 4, 5.0, "euler", "normal", conds["positive"], conds["negative"],
                                        latent, NegativeTiming(2), conds["empty"])["samples"]
    assert torch.equal(with_recording, without)
    transformer_layers = sum(1 for m in model.get_model_object("diffusion_model").modules() if hasattr(m, "attn2"))
    assert recording.counts[0, 0] == transformer_layers  # depth 2 blocks count twice
    assert not recording.snapshot().maps[:, 0].isnan().any()


def test_layer_choice_restricts_the_blocks():
    model = tiny_sdxl()
    diffusion_model = model.get_model_object("diffusion_model")
    assert cross_attention_blocks(diffusion_model, "middle block") == [("middle", 0)]
    assert all(name == "output" for name, _ in cross_attention_blocks(diffusion_model, "output blocks"))


@pytest.fixture(scope="module")
def sd15(checkpoint):
    model, clip, _vae = checkpoint
    return model, clip


def test_long_prompts_weights_and_split_words_on_the_real_checkpoint(sd15):
    model, clip = sd15
    filler = ", ".join(f"detail{i}" for i in range(40))
    positive = f"portrait photo of a (man:1.2), {filler}, photorealistic beard"
    negative = "mustache"
    patched, recording = RecordAttentionMaps.execute(model, clip, positive, negative, "man, photorealistic, beard",
                                                     "mustache", "all").result
    columns = dict(recording.columns["positive"])
    assert max(columns["beard"]) >= 77  # in the second 77-token chunk
    assert len(columns["photorealistic"]) > 1  # one word, several tokens
    samples = DelayedNegativeKSampler.execute(patched, 1, 4, 6.0, "euler", "normal", stock.encode(clip, positive),
                                              stock.encode(clip, negative), stock.empty_latent(64, 64), 1.0, 2, -1,
                                              "step", "empty prompt", clip, None).result[0]
    maps = CollectAttentionMaps.execute(recording, samples).result[0]
    assert isinstance(maps, AttentionMaps) and maps.steps == 4
    beard = maps.track_index("beard")
    assert not maps.maps[:, beard].isnan().any()
    assert maps.maps[:, beard].min() >= 0 and maps.maps[:, beard].max() <= 1


def test_a_word_missing_from_the_prompt_names_the_words_that_are_there(sd15):
    model, clip = sd15
    with pytest.raises(ValueError, match="'beard' is not in the positive prompt.*portrait, photo, of, a, man"):
        RecordAttentionMaps.execute(model, clip, "portrait photo of a man", "", "beard", "", "all")


def test_input_model_is_not_changed(sd15):
    model, clip = sd15
    before = (dict(model.model_options.get("transformer_options", {})), {k: dict(v) for k, v in model.wrappers.items()})
    RecordAttentionMaps.execute(model, clip, "portrait photo of a man", "mustache", "", "", "all")
    after = (dict(model.model_options.get("transformer_options", {})), {k: dict(v) for k, v in model.wrappers.items()})
    assert before == after


def test_works_with_the_stock_ksampler_too(sd15):
    model, clip = sd15
    positive, negative = "portrait photo of a man", "mustache"
    patched, recording = RecordAttentionMaps.execute(model, clip, positive, negative, "man", "mustache", "all").result
    samples = nodes.KSampler().sample(patched, 1, 3, 6.0, "euler", "normal", stock.encode(clip, positive),
                                      stock.encode(clip, negative), stock.empty_latent(64, 64))[0]
    maps = CollectAttentionMaps.execute(recording, samples).result[0]
    negative_track = maps.track_index("mustache")
    assert not maps.maps[:, negative_track].isnan().any()  # the stock KSampler uses the negative from step 0
    assert maps.maps[:, maps.track_index("<end>")].isnan().all()  # and never the empty prompt
    assert maps.steps == 3 and maps.maps.shape[2:] == (1, 8, 8)


def test_a_shorter_prompt_repeated_to_a_longer_one_counts_its_words_in_every_copy():
    """ComfyUI batches a 77-token negative beside a 154-token positive by repeating the negative's
    tokens; the attention to the word is then split between the copies, and both are its share."""
    recording = AttentionRecording({"positive": [("a", [3])], "negative": [("b", [2, 5])], "empty": []}, None)
    columns, words, index = recording.columns_to_gather("negative", 154, torch.device("cpu"), 77)
    assert columns == [2, 5, 79, 82] and sorted(words[0]) == columns and index.tolist() == columns
    columns, words, _ = recording.columns_to_gather("positive", 154, torch.device("cpu"), 154)
    assert columns == [3] and words == [[3]]
    # a length that is no multiple of the prompt's own: its columns as they are
    assert recording.columns_to_gather("negative", 100, torch.device("cpu"), 77)[0] == [2, 5]


def test_a_one_chunk_negative_batched_beside_a_two_chunk_positive_gets_both_copies_of_its_words():
    model = single_resolution_sd15()
    prompts = embeddings()
    prompts["positive"] = torch.randn(1, 154, 768, generator=torch.Generator().manual_seed(9)) * 3  # two chunks
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    patched = record_attention(model, recording)
    with capture_queries_and_keys(patched) as calls:
        run(patched, prompts, "euler", start=0)
    maps = recording.snapshot()
    layers = len(cross_attention_blocks(model.get_model_object("diffusion_model")))
    assert len(calls) == STEPS * layers
    mustache = [t.word for t in maps.tracks].index("mustache")
    for step in range(STEPS):
        expected, first_copy = 0, 0
        for q, k, heads in calls[step * layers:(step + 1) * layers]:
            assert k.shape[1] == 154  # ComfyUI batched both prompts, repeating the negative's 77 tokens
            row = next(r for r in range(k.shape[0]) if torch.equal(k[r, :77], k[r, 77:]))  # the negative's
            expected = expected + brute_force(q[row:row + 1], k[row:row + 1], heads, [1, 78]) / layers
            first_copy = first_copy + brute_force(q[row:row + 1], k[row:row + 1], heads, [1]) / layers
        got = maps.maps[step, mustache, 0].double()
        torch.testing.assert_close(got, expected.reshape(8, 8), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(got / 2, first_copy.reshape(8, 8), rtol=1e-5, atol=1e-7)  # each copy half
