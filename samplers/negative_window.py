"""When the negative prompt is in force, in sampler steps.

arXiv 2406.02965 shows a negative prompt should act only after a critical step: before it,
the unconditional branch of classifier-free guidance uses the empty prompt. Users think in
sampler steps (the progress bar, A1111's `[:neg:5]`), so everything here resolves to step
numbers of the schedule, whatever the scheduler, denoise or start step. (ComfyUI's own
ConditioningSetTimestepRange works in fractions of the model's timestep range instead, which
only matches steps for some schedulers and never with denoise < 1.)
"""

import math
from dataclasses import dataclass

START_UNITS = ("step", "fraction of steps", "sigma")
NEVER = -1.0  # the end value that keeps the negative on to the last step


@dataclass(frozen=True)
class NegativeTiming:
    """The node settings that say when the negative is used: start, end (NEVER: no end), unit."""

    start: float
    end: float = NEVER
    unit: str = "step"


@dataclass(frozen=True)
class NegativeWindow:
    """The negative prompt is used on steps start_step <= step < end_step of the full schedule."""

    start_step: int
    end_step: int

    def uses_negative(self, step: int) -> bool:
        return self.start_step <= step < self.end_step


def resolve_window(timing: NegativeTiming, schedule_sigmas,
                   names: tuple[str, str] = ("negative_start", "negative_end")) -> NegativeWindow:
    """Turn the node's settings into steps of `schedule_sigmas` (one more sigma than steps).

    A start at or past the last step means the negative is never used (the clean baseline of a
    critical-step sweep); bad values raise ValueError with what to change, naming the inputs
    `names` (the same window also serves the guidance interval).
    """
    start, end, unit = timing.start, timing.end, timing.unit
    sigmas = [float(s) for s in schedule_sigmas]
    steps = len(sigmas) - 1
    if unit not in START_UNITS:
        raise ValueError(f"Unknown unit '{unit}' for the negative's start; use one of {', '.join(START_UNITS)}.")
    start_name, end_name = names
    start_step = to_step(start, unit, sigmas, start_name)
    end_step = steps if end == NEVER else to_step(end, unit, sigmas, end_name)
    if end != NEVER and end_step <= start_step:
        raise ValueError(
            f"{end_name} ({end:g}) must come after {start_name} ({start:g}): the window would be empty. "
            f"Set {end_name} to {NEVER:g} to keep it open to the last step.")
    return NegativeWindow(start_step, end_step)


def to_step(value: float, unit: str, sigmas: list[float], name: str) -> int:
    steps = len(sigmas) - 1
    if unit == "step":
        if value != int(value) or value < 0:
            raise ValueError(f"{name} is {value:g}, but in steps it must be a whole number from 0 to {steps}. "
                             "For a part of the schedule, switch the unit to 'fraction of steps'.")
        return min(int(value), steps)
    if unit == "fraction of steps":
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} is {value:g}, but a fraction of steps lies between 0 and 1.")
        return fraction_to_step(value, steps)
    return sigma_to_step(value, sigmas, name)


def fraction_to_step(fraction: float, steps: int) -> int:
    """A fraction of `steps`, rounded up to a step (at most `steps`)."""
    # round() first so that 0.1 * 30 = 3.0000000000000004 still means step 3.
    return min(math.ceil(round(fraction * steps, 6)), steps)


def sigma_to_step(sigma: float, sigmas: list[float], name: str) -> int:
    """The first step whose starting sigma is at or below `sigma`."""
    steps = len(sigmas) - 1
    highest, lowest = sigmas[0], sigmas[steps - 1] if steps > 0 else sigmas[0]
    if not lowest <= sigma <= highest * (1 + 1e-6):
        raise ValueError(
            f"{name} is sigma {sigma:g}, outside this schedule's steps, which start at sigmas from "
            f"{highest:.4g} (step 0) down to {lowest:.4g} (step {steps - 1}). Pick a sigma in that range.")
    return next(step for step in range(steps) if sigmas[step] <= sigma * (1 + 1e-6))
