"""Attention maps on an SD3 checkpoint through the stock loader: the real path of a DiT run.

The generated SD3 checkpoint (an MMDiT of 2 blocks, ComfyUI's CLIP-L text encoder at full size,
a TAESD3 VAE) is loaded by the stock CheckpointLoaderSimple, which detects the architecture from
its shapes and builds ComfyUI's SD3 text encoder (CLIP-L only, as with CLIPLoader's sd3 type: the
conditioning is 77 CLIP tokens padded to 4096 wide). Prompts are encoded by CLIP Text Encode
(Attention Words); the words are chosen through Record Attention Maps, which reads the prompts
from the conditioning. Batch 2, a non-square latent (16 x 24: 8 x 12 image tokens), the empty
prompt's <end> before the delayed negative and the negative's word after it, every step.

The reference reads the queries and keys of every attention call from its own attention
override (test_dit_attention.capture_attention), keeps the joint calls (77 text tokens first, then the 96 image tokens), writes the
softmax over the whole joint sequence out per head in float64, sums each word's columns (found
here from the tokenizer's ids), averages the heads, lays each image token on its 2 x 2 latent
patch and averages the two blocks of each step.
"""

import math

import torch
from comfy_extras.nodes_sd3 import EmptySD3LatentImage

from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
from delayed_negative.nodes.attention_text_encode import DelayedNegativeTextEncode
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from test_dit_attention import capture_attention

PROMPT, NEGATIVE = "a portrait photo of a man with a red hat", "blurry hat"
SEED, STEPS, CFG, START, BATCH = 5, 5, 4.5, 2, 2
HEIGHT, WIDTH = 16, 24  # latent
TEXT, IMAGE = 77, (HEIGHT // 2) * (WIDTH // 2)
END_TOKEN = 49407


def sample(model, clip, positive, negative):
    latent = EmptySD3LatentImage.execute(WIDTH * 8, HEIGHT * 8, BATCH).result[0]
    return DelayedNegativeKSampler.execute(model, SEED, STEPS, CFG, "euler", "sgm_uniform", positive, negative, latent,
                                           1.0, START, -1.0, "step", "empty prompt", clip).result[0]


def token_columns(clip, text, token_ids):
    ids = [token[0] for chunk in clip.tokenize(text)["l"] for token in chunk]
    return [column for column, token in enumerate(ids) if token in token_ids]


def reference(calls, columns_of):
    """{(prompt, step): [words, batch, height, width]} from the joint calls (euler: one evaluation per step)."""
    joint = [c for c in calls if c[0].shape[2] == c[1].shape[2] == TEXT + IMAGE]
    assert len(joint) == 2 * STEPS
    sums = {}
    for number, (q, k, chunks) in enumerate(joint):  # heads first: [rows, heads, tokens, dim]
        step = number // 2
        scores = q.double()[:, :, TEXT:] @ k.double().transpose(-1, -2) / math.sqrt(q.shape[-1])
        probabilities = torch.softmax(scores, dim=-1)
        for index, chunk in enumerate(chunks):
            prompt = "positive" if chunk == 0 else ("negative" if step >= START else "empty")
            rows = probabilities[index * BATCH:(index + 1) * BATCH]
            words = [rows[..., columns].sum(-1).mean(1).reshape(BATCH, HEIGHT // 2, WIDTH // 2)
                     .repeat_interleave(2, 1).repeat_interleave(2, 2) for columns in columns_of[prompt]]
            sums.setdefault((prompt, step), []).append(torch.stack(words))
    return {key: torch.stack(value).mean(0) for key, value in sums.items()}


def test_record_node_on_an_sd3_checkpoint_equals_the_explicit_softmax(sd3_checkpoint):
    model, clip, _vae = sd3_checkpoint
    positive = DelayedNegativeTextEncode.execute(clip, PROMPT).result[0]
    negative = DelayedNegativeTextEncode.execute(clip, NEGATIVE).result[0]
    recorded, recording = RecordAttentionMaps.execute(model, clip, "", "", "man, red hat", "blurry", "all").result
    latent = sample(recorded, clip, positive, negative)
    maps = CollectAttentionMaps.execute(recording, latent).result[0]
    assert [(t.prompt, t.word) for t in maps.tracks] == [("positive", "man"), ("positive", "red hat"),
                                                         ("negative", "blurry"), ("empty", "<end>")]
    assert maps.maps.shape == (STEPS, 4, BATCH, HEIGHT, WIDTH)

    tokenizer = clip.tokenizer.clip_l.tokenizer
    word_ids = {word: tokenizer(word)["input_ids"][1:-1] for word in ("man", "red", "hat", "blurry")}
    columns_of = {"positive": [token_columns(clip, PROMPT, word_ids["man"]),
                               token_columns(clip, PROMPT, word_ids["red"] + word_ids["hat"])],
                  "negative": [token_columns(clip, NEGATIVE, word_ids["blurry"])],
                  "empty": [token_columns(clip, "", [END_TOKEN])[:1]]}
    assert [len(c) for c in columns_of["positive"]] == [1, 2] and columns_of["empty"] == [[1]]
    clone, calls = capture_attention(model)
    assert torch.equal(sample(clone, clip, positive, negative)["samples"], latent["samples"])  # bit-identical
    expected = reference(calls, columns_of)
    assert len(expected) == 2 * STEPS
    for (prompt, step), value in expected.items():
        ids = [i for i, track in enumerate(maps.tracks) if track.prompt == prompt]
        torch.testing.assert_close(maps.maps[step, ids].double(), value, rtol=1e-4, atol=1e-6,
                                   msg=f"{prompt} at step {step}")
