"""Time of a KSampler Sweep (Delayed Negative) against the separate runs it replaces (issue 10).

The sweep samples the generated SD1.5-architecture checkpoint with the negative from steps 0,
N/6, N/3, N/2 and never; the other side is one KSampler (Delayed Negative) run per start. Both
alternate in one process; medians of wall time. The goal is the shared prefix paid once: the
sweep's model evaluations over the separate runs' (for euler, one per step) is the ideal ratio.
"""

from devtools.bench.bench_delayed_negative import CFG, SAMPLER, SCHEDULER, SEED, bench_inputs, median_times
from delayed_negative.nodes.negative_inputs import before_negative_conditioning
from delayed_negative.samplers.ksampler import delayed_negative_ksampler
from delayed_negative.samplers.negative_window import NegativeTiming
from delayed_negative.samplers.sweep import parse_starts, sweep


def run(options) -> list[str]:
    model, clip, positive, negative, latent = bench_inputs(options)
    steps = options.steps
    first_steps = [0, steps // 6, steps // 3, steps // 2, steps]
    starts = parse_starts(", ".join(map(str, first_steps[:-1])) + ", never")
    early = before_negative_conditioning("empty prompt", clip, None, NegativeTiming(1.0))

    def swept():
        return sweep(model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent, starts, "step", early)

    def separate():
        for start in first_steps:
            delayed_negative_ksampler(model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent,
                                      NegativeTiming(float(start)), early)

    evaluated = swept().evaluated
    ideal = evaluated / (steps * len(first_steps))
    ours, theirs = median_times(swept, separate, options.repeats)
    return [f"KSampler Sweep / separate runs: {SAMPLER}, {SCHEDULER}, {steps} steps, starts "
            f"{', '.join(map(str, first_steps[:-1]))}, never, {options.size}x{options.size} image, medians of "
            f"{options.repeats} alternating runs",
            f"  ratio {ours / theirs:.3f} ({ours:.3f} s / {theirs:.3f} s)  ideal: model evaluations "
            f"{evaluated} / {steps * len(first_steps)} = {ideal:.3f}"]
