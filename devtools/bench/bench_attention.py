"""Cost of recording attention maps (issue 3, "Speed and memory").

The same sampling with and without Record Attention Maps, in one process, alternately, medians
of wall time (goal <= 1.10); and the bytes the recording holds for its maps against what it
records: steps x recorded words x batch x latent height x latent width x 4 (goal <= 2), each word
counted once, in the one branch it is recorded in (the positive prompt's words in the positive
branch, the negative's and the empty prompt's <end> in the unconditional one).
"""

import nodes

from devtools.bench.bench_delayed_negative import load_checkpoint, median_times
from delayed_negative.nodes.attention_maps import RecordAttentionMaps

SEED, CFG, SAMPLER, SCHEDULER = 42, 8.0, "euler", "normal"
POSITIVE, NEGATIVE = "portrait photo of a man", "mustache"
POSITIVE_WORDS, NEGATIVE_WORDS = "photo, man", "mustache"


def run(options) -> list[str]:
    model, clip = load_checkpoint()
    positive = nodes.CLIPTextEncode().encode(clip, POSITIVE)[0]
    negative = nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0]
    latent = nodes.EmptyLatentImage().generate(options.size, options.size, 1)[0]
    recording_model, recording = RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, POSITIVE_WORDS,
                                                             NEGATIVE_WORDS, "all").result

    def sample(with_model):
        return lambda: nodes.KSampler().sample(with_model, SEED, options.steps, CFG, SAMPLER, SCHEDULER, positive,
                                               negative, latent)

    recorded, plain = median_times(sample(recording_model), sample(model), options.repeats)
    held = recording.sums.nbytes + recording.counts.nbytes
    steps, _tracks, batch, height, width = recording.sums.shape
    # One track per word and the branch it is in: the chosen words and the empty prompt's <end>.
    words = len(POSITIVE_WORDS.split(",")) + len(NEGATIVE_WORDS.split(",")) + 1
    assert words == len(recording.tracks)
    budget = steps * words * batch * height * width * 4
    return [
        f"Record Attention Maps: {SAMPLER}, {options.steps} steps, {options.size}x{options.size} image, words "
        f"'{POSITIVE_WORDS}' + '{NEGATIVE_WORDS}', all cross-attention layers, medians of {options.repeats} "
        "alternating runs",
        f"  time with / without recording: {recorded / plain:.3f} ({recorded:.3f} s / {plain:.3f} s)  goal <= 1.10",
        (f"  bytes held / (steps x recorded words x batch x H x W x 4): {held / budget:.3f} "
         f"({held} / {budget} bytes; {words} words, each in its own branch, incl. the empty prompt's <end>)  "
         "goal <= 2"),
    ]
