"""Guidance over time: the cfg of each step, a negative that ramps in, a guidance interval.

The paper's schedule is a switch (empty prompt, then the negative from the critical step).
People who time their negatives also shape the guidance itself:

- cfg per step: a constant, a list (`8, 8, 7, 6`; the last value holds to the end), or a curve
  (linear or cosine) from one value to another over a range of steps, flat outside it;
- a negative ramp: from its start step the unconditional branch moves from the conditioning
  used before it to the negative over `ramp_steps` steps, with the negative's share 1/(R+1),
  2/(R+1), ..., R/(R+1), then 1. The blend is made in the conditioning, by ComfyUI's own
  ConditioningAverage (the negative's tensors and pooled output weighted against the earlier
  conditioning's), one blended conditioning per ramp step: it costs no extra model evaluation.
- a guidance interval (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval"):
  guidance only on the steps of a window given like the negative's (steps, fraction of steps or
  sigmas, the same resolve_window); outside it no guidance (cfg 1, the unconditional evaluation
  is skipped).

Everything resolves to whole steps of the full schedule, and the guider reads it per step from
the same step clock as the negative's window, so it lands on the same steps for every sampler.
The default schedule changes nothing: the guider gives the same latents bit for bit.
"""

import math
from dataclasses import dataclass

from .negative_window import NEVER, NegativeTiming, resolve_window

CFG_CURVES = ("constant", "list", "linear", "cosine")
ALWAYS = NegativeTiming(0.0, NEVER, "step")


@dataclass(frozen=True)
class GuidanceSchedule:
    """What the Guidance Schedule node says; `cfg_curve` "constant" keeps the sampler's own cfg."""

    cfg_curve: str = "constant"
    cfg_list: tuple[float, ...] = ()
    cfg_first: float = 8.0
    cfg_last: float = 8.0
    curve_first_step: int = 0
    curve_last_step: int = -1  # -1: the last step
    ramp_steps: int = 0
    guidance: NegativeTiming = ALWAYS


@dataclass(frozen=True)
class GuidancePlan:
    """A schedule resolved on one run's full schedule: one entry per step."""

    cfg: tuple[float, ...]
    guided: tuple[bool, ...]
    ramp_steps: int

    def cfg_at(self, step: int) -> float:
        return self.cfg[min(step, len(self.cfg) - 1)]

    def guided_at(self, step: int) -> bool:
        return self.guided[min(step, len(self.guided) - 1)]


def ramp_shares(ramp_steps: int) -> list[float]:
    """The negative's share on each ramp step; after them it is 1."""
    return [(index + 1) / (ramp_steps + 1) for index in range(ramp_steps)]


def parse_cfg_list(text: str) -> tuple[float, ...]:
    """'8, 8, 7.5, 6' -> (8.0, 8.0, 7.5, 6.0); a clear ValueError otherwise."""
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError:
        raise ValueError(f"cfg_list '{text}' is not a list of numbers: write it like '8, 8, 7, 6' "
                         "(one cfg per step; the last one holds to the end).") from None
    if not values:
        raise ValueError("cfg_curve is 'list' but cfg_list is empty: write one cfg per step, like '8, 8, 7, 6'.")
    if any(not math.isfinite(value) or value < 0 for value in values):
        raise ValueError(f"cfg_list '{text}' has a negative or infinite value; cfg values are 0 or more.")
    return values


def resolve_plan(schedule: GuidanceSchedule, sampler_cfg: float, schedule_sigmas) -> GuidancePlan:
    """Per-step cfg and guidance for a full schedule of `schedule_sigmas` (one more sigma than steps)."""
    steps = len(schedule_sigmas) - 1
    cfg = tuple(cfg_of_step(schedule, sampler_cfg, step, steps) for step in range(steps))
    window = resolve_window(schedule.guidance, schedule_sigmas, names=("guidance_start", "guidance_end"))
    guided = tuple(window.uses_negative(step) for step in range(steps))
    if schedule.cfg_curve != "constant" and not any(c > 1 for c, g in zip(cfg, guided) if g):
        raise ValueError(f"The guidance schedule's cfg is 1 or below on every guided step ({describe(cfg)}), so the "
                         "negative prompt would do nothing: give some steps a cfg above 1 (SD1.5: 5-8).")
    return GuidancePlan(cfg, guided, schedule.ramp_steps)


def describe(cfg: tuple[float, ...]) -> str:
    shown = ", ".join(f"{value:g}" for value in cfg[:8])
    return shown + (", ..." if len(cfg) > 8 else "")


def cfg_of_step(schedule: GuidanceSchedule, sampler_cfg: float, step: int, steps: int) -> float:
    if schedule.cfg_curve == "constant":
        return sampler_cfg
    if schedule.cfg_curve == "list":
        return schedule.cfg_list[min(step, len(schedule.cfg_list) - 1)]
    first = min(schedule.curve_first_step, steps - 1)
    last = steps - 1 if schedule.curve_last_step < 0 else min(schedule.curve_last_step, steps - 1)
    if last < first:
        raise ValueError(f"curve_last_step ({schedule.curve_last_step}) comes before curve_first_step "
                         f"({schedule.curve_first_step}): set it after, or -1 for the last step.")
    if last == first:  # a curve of one step: cfg_first before it, cfg_last from it on
        progress = 0.0 if step < first else 1.0
    else:
        progress = min(max((step - first) / (last - first), 0.0), 1.0)
    if schedule.cfg_curve == "cosine":
        progress = (1 - math.cos(math.pi * progress)) / 2
    return schedule.cfg_first + (schedule.cfg_last - schedule.cfg_first) * progress
