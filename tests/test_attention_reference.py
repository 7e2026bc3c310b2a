"""Recorded attention maps against an explicit per-head softmax, on the paths real runs take.

The generated SD1.5-architecture checkpoint, loaded by the stock CheckpointLoaderSimple, has
cross-attention at two resolutions (the latent's and half of it); the prompts are encoded by
its CLIP through the stock CLIPTextEncode; the words are chosen through the Record Attention
Maps node, whose own word → token-column mapping is checked against columns found here from
the tokenizer's ids. Batch 2, a non-square latent, both branches (the positive words, the empty
prompt's <end> before the delayed negative and the negative's words after it), every step.

The reference reads q and k from forward hooks on every cross-attention's to_q / to_k (the
modules themselves, not the pack's patch), computes softmax(q·kᵀ/√d) head by head in float64,
sums the word's columns, averages the heads, reshapes each layer's pixels to its own
(height, width), brings it to the latent's size bilinearly, and averages the layers and the
model calls of each step (the step taken from the sampler's own loop counter).

The SDXL architecture cannot go through the checkpoint loader at a reduced size (see
devtools/models/tiny_models.py): it is built in memory, with random conditioning tensors and
hand-written columns, and checked against the same reference.
"""


import pytest
import stock
import torch
from attention_hooks import at_latent_size, hook_cross_attention, word_probability
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.samplers.ksampler import delayed_negative_ksampler, full_schedule
from delayed_negative.samplers.negative_window import NegativeTiming
from instrumented import instrument
from devtools.models.tiny_models import tiny_sdxl

BLOCK_GROUPS = {"all": ("input", "middle", "output"), "input blocks": ("input",), "middle block": ("middle",),
                "output blocks": ("output",)}


def reference_maps(calls, log, tracks, columns, groups, steps, batch, height, width):
    """[steps, tracks, batch, height, width] from the hooked q, k; NaN where a track's prompt was not there."""
    per_call = len(calls) // len(log)
    assert per_call * len(log) == len(calls) and per_call > 0
    sums = torch.zeros(steps, len(tracks), batch, height, width, dtype=torch.float64)
    counts = torch.zeros(steps, len(tracks))
    for number, evaluation in enumerate(log):
        prompt_of_chunk = {evaluation.chunks.index(0): "positive"}
        if 1 in evaluation.chunks:
            prompt_of_chunk[evaluation.chunks.index(1)] = evaluation.uncond
        for track_index, track in enumerate(tracks):
            chunk = next((c for c, prompt in prompt_of_chunk.items() if prompt == track.prompt), None)
            if chunk is None:
                continue
            rows = slice(chunk * batch, (chunk + 1) * batch)
            for group, q, k, heads, _to_k in calls[number * per_call:(number + 1) * per_call]:
                if group in groups:
                    probability = word_probability(q[rows], k[rows], heads, columns[track.prompt][track.word])
                    sums[evaluation.sampler_step, track_index] += at_latent_size(probability, height, width)
                    counts[evaluation.sampler_step, track_index] += 1
    counts = counts[:, :, None, None, None]
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))


def assert_maps_match(recorded, expected, tracks):
    assert recorded.shape == expected.shape
    for step in range(expected.shape[0]):
        for index, track in enumerate(tracks):
            torch.testing.assert_close(recorded[step, index].double(), expected[step, index], rtol=2e-5, atol=1e-7,
                                       equal_nan=True, msg=lambda m, step=step, track=track: f"step {step}, {track}: {m}")


def token_columns(clip, text, word):
    """Where the tokenizer's ids of `word` sit among the prompt's token columns (every occurrence);
    "<end>" is the first end-of-text token."""
    ids = [token for chunk in clip.tokenize(text)["l"] for token, _weight in chunk]
    hf_tokenizer = clip.tokenizer.clip_l.tokenizer
    if word == "<end>":
        return [ids.index(hf_tokenizer.eos_token_id)]
    word_ids = hf_tokenizer(word)["input_ids"][1:-1]
    return [start + offset for start in range(len(ids) - len(word_ids) + 1)
            if ids[start:start + len(word_ids)] == word_ids for offset in range(len(word_ids))]


# --- the generated checkpoint, through the Record Attention Maps node -----------------------------------------

POSITIVE, NEGATIVE = "portrait photo of a man, photorealistic", "mustache, blurry"
POSITIVE_WORDS, NEGATIVE_WORDS = "man, photorealistic", "mustache"
WIDTH, HEIGHT, BATCH = 80, 48, 2  # a 10 x 6 latent; its half-resolution layers are 5 x 3


@pytest.fixture(scope="module")
def sd15(checkpoint):
    model, clip, _vae = checkpoint
    texts = {"positive": POSITIVE, "negative": NEGATIVE, "empty": ""}
    conditioning = {name: stock.encode(clip, text) for name, text in texts.items()}
    return model, clip, texts, conditioning


def record_on_the_checkpoint(sd15, layers, steps, start):
    model, clip, _texts, conditioning = sd15
    patched, recording = RecordAttentionMaps.execute(
        model=model, clip=clip, positive_prompt=POSITIVE, negative_prompt=NEGATIVE, positive_words=POSITIVE_WORDS,
        negative_words=NEGATIVE_WORDS, layers=layers).result
    log = []
    instrumented = instrument(patched, {name: c[0][0] for name, c in conditioning.items()}, log)
    calls, handles = hook_cross_attention(instrumented)
    try:
        samples = DelayedNegativeKSampler.execute(
            model=instrumented, seed=3, steps=steps, cfg=6.0, sampler_name="euler", scheduler="normal",
            positive=conditioning["positive"], negative=conditioning["negative"],
            latent_image=stock.empty_latent(WIDTH, HEIGHT, BATCH), denoise=1.0, negative_start=start,
            negative_end=-1.0, timing_unit="step", before_negative="empty prompt", clip=clip).result[0]
    finally:
        for handle in handles:
            handle.remove()
    maps = CollectAttentionMaps.execute(recording=recording, samples=samples).result[0]
    return maps, recording, calls, log


def independent_columns(sd15, recording):
    _model, clip, texts, _conditioning = sd15
    return {prompt: {word: token_columns(clip, texts[prompt], word) for word, _ in words}
            for prompt, words in recording.columns.items()}


@pytest.mark.parametrize("layers, steps, start", [("all", 4, 2), ("middle block", 2, 1)])
def test_checkpoint_maps_equal_a_per_head_softmax_from_hooks(sd15, layers, steps, start):
    maps, recording, calls, log = record_on_the_checkpoint(sd15, layers, steps, start)
    columns = independent_columns(sd15, recording)
    assert {prompt: dict(words) for prompt, words in recording.columns.items()} == columns
    assert [(track.prompt, track.word) for track in maps.tracks] == [
        ("positive", "man"), ("positive", "photorealistic"), ("negative", "mustache"), ("empty", "<end>")]
    assert len(columns["positive"]["photorealistic"]) > 1  # a word of several tokens
    # The real path: two resolutions among the layers chosen, cond and uncond in one batch.
    chosen = [call.q.shape[1] for call in calls if call.group in BLOCK_GROUPS[layers]]
    assert set(chosen) == ({60, 15} if layers == "all" else {15})
    assert all(len(evaluation.chunks) == 2 for evaluation in log)
    assert [e.uncond for e in log] == ["empty"] * start + ["negative"] * (steps - start)
    expected = reference_maps(calls, log, maps.tracks, columns, BLOCK_GROUPS[layers], steps, BATCH,
                              HEIGHT // 8, WIDTH // 8)
    assert_maps_match(maps.maps, expected, maps.tracks)
    # The maps are not flat: a transposed or mis-scaled map would show.
    present = maps.maps[~maps.maps.isnan()]
    assert present.std() > 1e-3 * present.mean()


# --- the SDXL architecture, in memory ------------------------------------------------------------------------

SDXL_COLUMNS = {"positive": [("man", [5]), ("photo", [2, 3])], "negative": [("mustache", [1, 2])],
                "empty": [("<end>", [1])]}


def test_sdxl_maps_equal_a_per_head_softmax_from_hooks():
    model = tiny_sdxl()
    generator = torch.Generator().manual_seed(0)
    prompts = {name: torch.randn(1, 77, 2048, generator=generator) * 3 for name in ("positive", "negative", "empty")}
    pooled = torch.zeros(1, 1280)
    conds = {name: [[tensor, {"pooled_output": pooled}]] for name, tensor in prompts.items()}
    recording = AttentionRecording(SDXL_COLUMNS, prompts["empty"])
    log = []
    instrumented = instrument(record_attention(model, recording), prompts, log)
    calls, handles = hook_cross_attention(instrumented)
    steps, start, height, width = 3, 1, 6, 10
    try:
        delayed_negative_ksampler(instrumented, 2, steps, 5.0, "heun", "karras", conds["positive"],
                                  conds["negative"], {"samples": torch.zeros(BATCH, 4, height, width)},
                                  NegativeTiming(start), conds["empty"])
    finally:
        for handle in handles:
            handle.remove()
    maps = recording.snapshot()
    assert [track.branch for track in maps.tracks] == ["positive", "positive", "unconditional", "unconditional"]
    assert maps.sigmas == tuple(float(s) for s in full_schedule(model, steps, "heun", "karras")[:-1])
    assert {call.q.shape[1] for call in calls} == {15}  # every layer at half the latent's size
    assert [e.sampler_step for e in log] == [0, 0, 1, 1, 2]  # heun: two model calls a step, one on the last
    columns = {prompt: dict(words) for prompt, words in SDXL_COLUMNS.items()}
    expected = reference_maps(calls, log, maps.tracks, columns, BLOCK_GROUPS["all"], steps, BATCH, height, width)
    assert_maps_match(maps.maps, expected, maps.tracks)
