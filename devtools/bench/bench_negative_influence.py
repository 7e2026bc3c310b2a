"""Cost of measuring the negative's influence (issue 23, "Where the negative acted").

The same recording (Record Attention Maps, the words of bench_attention) with negative_influence
on and off, in one process, alternately, medians of wall time: with the stock KSampler (the
negative from step 0, so every step evaluates the empty prompt too, in the batch of the positive
and the negative: three prompts instead of two) and with KSampler (Delayed Negative), the negative
from a third of the steps (only the steps from there on pay). The measure adds one unconditional
evaluation per step where the negative acts; the batch is model time, so on the CPU the first
figure is about 3/2, less the work that does not grow with the batch.
"""

import nodes

from devtools.bench.bench_attention import (CFG, NEGATIVE, NEGATIVE_WORDS, POSITIVE, POSITIVE_WORDS, SAMPLER,
                                            SCHEDULER, SEED)
from devtools.bench.bench_delayed_negative import load_checkpoint, median_times
from delayed_negative.nodes.attention_maps import RecordAttentionMaps
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler


def run(options) -> list[str]:
    model, clip = load_checkpoint()
    positive = nodes.CLIPTextEncode().encode(clip, POSITIVE)[0]
    negative = nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0]
    latent = nodes.EmptyLatentImage().generate(options.size, options.size, 1)[0]
    start = options.steps // 3

    def recorder(influence: bool):
        return RecordAttentionMaps.execute(model, clip, POSITIVE, NEGATIVE, POSITIVE_WORDS, NEGATIVE_WORDS, "all",
                                           influence).result[0]

    measured, plain = recorder(True), recorder(False)

    def stock(with_model):
        return lambda: nodes.KSampler().sample(with_model, SEED, options.steps, CFG, SAMPLER, SCHEDULER, positive,
                                               negative, latent)

    def delayed(with_model):
        return lambda: DelayedNegativeKSampler.execute(with_model, SEED, options.steps, CFG, SAMPLER, SCHEDULER,
                                                       positive, negative, latent, 1.0, start, -1.0, "step",
                                                       "empty prompt", clip, None)

    stock_on, stock_off = median_times(stock(measured), stock(plain), options.repeats)
    delayed_on, delayed_off = median_times(delayed(measured), delayed(plain), options.repeats)
    return [
        (f"Negative influence (Record Attention Maps, negative_influence on / off): {SAMPLER}, {options.steps} "
         f"steps, {options.size}x{options.size} image, medians of {options.repeats} alternating runs"),
        (f"  stock KSampler, the negative at every step: {stock_on / stock_off:.3f} ({stock_on:.3f} s / "
         f"{stock_off:.3f} s)"),
        (f"  KSampler (Delayed Negative), the negative from step {start}: {delayed_on / delayed_off:.3f} "
         f"({delayed_on:.3f} s / {delayed_off:.3f} s)"),
    ]
