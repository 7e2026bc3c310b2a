"""Prompts entered once: Record Attention Maps with its prompt texts left empty reads them from the
conditioning of CLIP Text Encode (Attention Words), on the generated checkpoint through the stock
loader, CLIP Text Encode, conditioning nodes and KSampler.

The reference is the recorder as it was, with the prompts typed in: the maps must be the same,
bit for bit, for plain, weighted and embedding-free long prompts; the conditioning nodes that
change what a branch holds get a clear message.
"""

import logging

import nodes
import pytest
import stock
import torch
from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
from delayed_negative.nodes.attention_text_encode import DelayedNegativeTextEncode
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler

POSITIVE = "portrait photo of a (man:1.2) with glasses, studio light"
NEGATIVE = "mustache, blurry"
LONG = ", ".join(["portrait photo of a man with glasses"] * 12)  # three chunks of 77 tokens


def encode_once(clip, text):
    return DelayedNegativeTextEncode.execute(clip, text).result[0]


def record(checkpoint, positive, negative, typed_positive="", typed_negative="", words=("", "")):
    """Maps of a delayed-negative run (negative from step 2 of 4) recorded by Record Attention Maps."""
    model, clip, _ = checkpoint
    patched, recording = RecordAttentionMaps.execute(model, clip, typed_positive, typed_negative, words[0],
                                                     words[1], "all").result
    latent = stock.empty_latent(64, 48, batch_size=2)
    samples = DelayedNegativeKSampler.execute(patched, 3, 4, 6.0, "euler", "normal", positive, negative, latent, 1.0,
                                              2, -1.0, "step", "empty prompt", clip).result[0]
    return CollectAttentionMaps.execute(recording, samples).result[0]


def test_the_conditioning_is_the_stock_encoders_bit_for_bit(checkpoint):
    clip = checkpoint[1]
    ours, theirs = encode_once(clip, POSITIVE), stock.encode(clip, POSITIVE)
    assert len(ours) == len(theirs) == 1
    assert torch.equal(ours[0][0], theirs[0][0])
    assert torch.equal(ours[0][1]["pooled_output"], theirs[0][1]["pooled_output"])
    assert set(ours[0][1]) - set(theirs[0][1]) == {"delayed_negative_prompt"}


@pytest.mark.parametrize("positive_text, words", [(POSITIVE, ("man, glasses", "")), (LONG, ("glasses", "blurry"))])
def test_maps_equal_those_of_typed_prompts(checkpoint, positive_text, words):
    clip = checkpoint[1]
    once = record(checkpoint, encode_once(clip, positive_text), encode_once(clip, NEGATIVE), words=words)
    typed = record(checkpoint, stock.encode(clip, positive_text), stock.encode(clip, NEGATIVE), positive_text,
                   NEGATIVE, words)
    assert once.tracks == typed.tracks
    assert {track.word for track in once.tracks if track.prompt != "empty"} >= {"glasses"}
    assert torch.allclose(once.maps, typed.maps, rtol=0, atol=0, equal_nan=True)  # the same maps, bit for bit


def test_a_typed_prompt_still_wins_and_one_branch_can_come_from_each(checkpoint):
    clip = checkpoint[1]
    mixed = record(checkpoint, encode_once(clip, POSITIVE), stock.encode(clip, NEGATIVE), "", NEGATIVE)
    typed = record(checkpoint, stock.encode(clip, POSITIVE), stock.encode(clip, NEGATIVE), POSITIVE, NEGATIVE)
    assert mixed.tracks == typed.tracks
    assert torch.allclose(mixed.maps, typed.maps, rtol=0, atol=0, equal_nan=True)


def test_nothing_to_read_says_what_to_do(checkpoint):
    clip = checkpoint[1]
    with pytest.raises(ValueError, match=r"does not know the prompts: encode them with CLIP Text Encode \(Attention"):
        record(checkpoint, stock.encode(clip, POSITIVE), stock.encode(clip, NEGATIVE))


def test_two_prompts_combined_in_one_branch_are_refused(checkpoint):
    clip = checkpoint[1]
    combined = nodes.ConditioningCombine().combine(encode_once(clip, POSITIVE), encode_once(clip, "a red hat"))[0]
    with pytest.raises(ValueError, match="The positive conditioning combines 2 prompts"):
        record(checkpoint, combined, encode_once(clip, NEGATIVE))


def test_concat_and_average_are_told(checkpoint, caplog):
    clip = checkpoint[1]
    concatenated = nodes.ConditioningConcat().concat(encode_once(clip, POSITIVE), stock.encode(clip, "a red hat"))[0]
    with caplog.at_level(logging.WARNING, logger="delayed_negative"):
        maps = record(checkpoint, concatenated, encode_once(clip, NEGATIVE), words=("glasses", ""))
    assert "was concatenated with another conditioning: its own 77 token columns are recorded, the 77" in caplog.text
    assert [track.word for track in maps.tracks if track.prompt == "positive"] == ["glasses"]
    caplog.clear()
    averaged = nodes.ConditioningAverage().addWeighted(encode_once(clip, POSITIVE), stock.encode(clip, "a red hat"),
                                                       0.5)[0]
    with caplog.at_level(logging.WARNING, logger="delayed_negative"):
        record(checkpoint, averaged, encode_once(clip, NEGATIVE))
    assert "The positive conditioning was changed after" in caplog.text


def test_the_given_conditioning_is_not_changed(checkpoint):
    clip = checkpoint[1]
    given = stock.encode(clip, POSITIVE)
    options = dict(given[0][1])
    DelayedNegativeTextEncode.execute(clip, POSITIVE)
    from delayed_negative.attention.conditioning_prompts import with_prompt

    out = with_prompt(given, POSITIVE)
    assert given[0][1] == options and out[0][1] is not given[0][1]
