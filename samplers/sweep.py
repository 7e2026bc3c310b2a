"""A critical-step sweep: one seed sampled with the negative starting at several steps.

Each start gives exactly the latent of a separate KSampler (Delayed Negative) run with that
start. The runs go latest start first and share their model evaluations of the steps before
each start (shared_prefix.py), so the common prefix is paid once.
"""

from dataclasses import dataclass

from .ksampler import delayed_negative_ksampler, full_schedule
from .negative_window import NEVER, NegativeTiming, resolve_window
from .shared_prefix import SharedPrefix

NEVER_WORDS = ("never", "none", "off")


@dataclass(frozen=True)
class SweepStart:
    text: str  # as the user wrote it, for the label
    value: float  # in the sweep's timing unit; NEVER_START for never

    @property
    def label(self) -> str:
        return "never" if self.value == NEVER_START else f"start {self.text}"


NEVER_START = float("inf")


def parse_starts(text: str) -> list[SweepStart]:
    """'0, 3, 6, 10, never' -> the starts in order; a clear ValueError otherwise."""
    starts = []
    for part in (part.strip() for part in text.replace(";", ",").split(",")):
        if not part:
            continue
        if part.lower() in NEVER_WORDS:
            starts.append(SweepStart(part, NEVER_START))
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"starts: '{part}' is neither a number nor 'never'. Write the starts like "
                             "'0, 3, 6, 10, never' (in the timing unit).") from None
        if value < 0:
            raise ValueError(f"starts: {part} is negative; a start is 0 or more (0 = the stock KSampler).")
        starts.append(SweepStart(part, value))
    if not starts:
        raise ValueError("starts is empty: list the negative starts to compare, like '0, 3, 6, 10, never'.")
    return starts


@dataclass(frozen=True)
class SweepResult:
    latents: list[dict]  # one LATENT per start, in the order given
    evaluated: int  # guided predictions computed
    reused: int  # guided predictions taken from an earlier run


def sweep(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, starts: list[SweepStart],
          unit: str, before_negative, denoise=1.0, guidance=None) -> SweepResult:
    """Sample once per start; `before_negative` is the conditioning used before each start."""
    schedule = full_schedule(model, steps, sampler_name, scheduler, denoise)
    timings = [NegativeTiming(len(schedule) - 1.0 if start.value == NEVER_START else start.value, NEVER,
                              "step" if start.value == NEVER_START else unit) for start in starts]
    first_steps = [resolve_window(timing, schedule).start_step for timing in timings]
    shared = SharedPrefix()
    results = {}
    for index in sorted(range(len(starts)), key=lambda i: -first_steps[i]):
        shared.begin_run(reuse_before=first_steps[index])
        results[index] = delayed_negative_ksampler(
            model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, timings[index],
            before_negative, denoise=denoise, guidance=guidance, shared=shared)
    return SweepResult([results[index] for index in range(len(starts))], shared.evaluated, shared.reused)
