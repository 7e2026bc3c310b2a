"""Cost of a Guidance Schedule against the plain hard switch (issue 11, "Tests and figures").

Both sides are KSampler (Delayed Negative) on the generated SD1.5-architecture checkpoint, with
the negative from a quarter of the steps, run alternately in one process (medians of wall time).

- A schedule (cfg per step from a list, a negative ramp over three steps) makes the same model
  evaluations as the hard switch: the ratio should be about 1 (goal <= 1.01).
- A guidance interval over the middle half of the steps skips the unconditional evaluation of
  the other half: for a sampler with one evaluation per step the ideal ratio is
  1 - outside / (2 * steps). As with "no guidance before the switch", it is reached where an
  evaluation's cost grows with its batch; a small latent on a CPU stays nearer 1.
"""

from devtools.bench.bench_delayed_negative import CFG, SAMPLER, SCHEDULER, SEED, bench_inputs, median_times
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.nodes.guidance_schedule import DelayedNegativeGuidanceSchedule


def schedule(steps: int, **settings):
    values = dict(cfg_curve="constant", cfg_list="8", cfg_first=8.0, cfg_last=4.0, curve_first_step=0,
                  curve_last_step=-1, ramp_steps=0, guidance_start=0.0, guidance_end=-1.0, guidance_unit="step")
    values.update(settings)
    return DelayedNegativeGuidanceSchedule.execute(**values).result[0]


def run(options) -> list[str]:
    model, clip, positive, negative, latent = bench_inputs(options)
    steps = options.steps
    negative_start = steps // 4

    def delayed(guidance=None):
        return lambda: DelayedNegativeKSampler.execute(
            model, SEED, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent, 1.0, negative_start, -1.0,
            "step", "empty prompt", clip, None, guidance)

    cfg_list = ", ".join(f"{CFG - 4 * step / steps:g}" for step in range(steps))
    shaped = schedule(steps, cfg_curve="list", cfg_list=cfg_list, ramp_steps=3)
    first, last = steps // 4, steps - steps // 4
    interval = schedule(steps, guidance_start=first, guidance_end=last)
    outside = steps - (last - first)
    ideal = 1 - outside / (2 * steps)
    lines = [f"Guidance Schedule / hard switch: {SAMPLER}, {SCHEDULER}, {steps} steps, negative from step "
             f"{negative_start}, {options.size}x{options.size} image, medians of {options.repeats} alternating runs"]
    for label, guidance, target in [
            ("cfg list + ramp of 3 steps     ", shaped, "goal <= 1.01"),
            (f"guidance on steps {first}-{last - 1} only   ", interval, f"ideal 1 - outside/(2N) = {ideal:.3f}")]:
        ours, theirs = median_times(delayed(guidance), delayed(), options.repeats)
        lines.append(f"  {label}: ratio {ours / theirs:.3f} ({ours:.3f} s / {theirs:.3f} s)  {target}")
    return lines
