"""Cost of the automatic start against the same start typed in (issue 10, "Automatic start").

Both sides are KSampler (Delayed Negative) on the generated SD1.5-architecture checkpoint, run
alternately in one process (medians of wall time): timing_unit 'auto', and the step it picked
as a fixed start. They make the same model evaluations; what auto adds is the watch on the
positive branch's cross-attention until it picks (one extra score matrix per layer call, like
the attention recording) and a small projection of the negative per layer. Goal <= 1.10.
"""

from devtools.bench.bench_delayed_negative import CFG, SAMPLER, SCHEDULER, SEED, bench_inputs, median_times
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler


def run(options) -> list[str]:
    model, clip, positive, negative, latent = bench_inputs(options)
    steps = options.steps

    def delayed(start, unit):
        return lambda: DelayedNegativeKSampler.execute(model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive,
                                                       negative, latent, 1.0, start, -1.0, unit, "empty prompt",
                                                       clip).result[1]

    picked = delayed(0, "auto")()
    ours, theirs = median_times(delayed(0, "auto"), delayed(picked, "step"), options.repeats)
    return [f"Automatic start / the same start typed in: {SAMPLER}, {SCHEDULER}, {steps} steps, picked step {picked}, "
            f"{options.size}x{options.size} image, medians of {options.repeats} alternating runs",
            f"  ratio {ours / theirs:.3f} ({ours:.3f} s / {theirs:.3f} s)  goal <= 1.10"]
