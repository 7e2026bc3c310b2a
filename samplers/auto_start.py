"""The automatic start: begin the negative once the image has begun to form what it names.

Each step, the positive branch's attention tells how much the image already matches the negative
prompt (attention/negative_watch.py: a share map per batch item). Its strength is the mean of
the top tenth of each item's map (where the negative's share is highest: what it names is
usually small), averaged over the batch. At the first step, from pure noise, that strength is
the model's prior; as the image forms what the negative names, it rises. The negative starts at
the step after the first one whose strength has risen by

    threshold = 4% x (1 - sensitivity)

above the first watched step's, bounded by the earliest and latest allowed steps: sensitivity 1
starts at the first rise, 0 waits for a rise of 4%. (The rule and its default were chosen on the
toy portraits model's seeds 0 and 1, and measured on other seeds: README, "Choosing the critical
step".) The decision for step s+1 uses only steps up to s, which have finished before step
s+1's first model evaluation, so the switch lands on a whole step for every sampler, and no
model evaluation is added.
"""

from dataclasses import dataclass, replace

import torch

from .negative_window import fraction_to_step
from ..clock.notice import tell_user

AUTO = "auto"
MAX_RISE = 0.04  # the rise that sensitivity 0 waits for
TOP_SHARE = 0.1  # the part of each map, by value, whose mean is its strength


@dataclass(frozen=True)
class AutoStart:
    """The automatic start's settings: earliest and latest are fractions of the steps (rounded up)."""

    sensitivity: float = 0.5
    earliest: float = 0.1
    latest: float = 0.5

    def check(self) -> None:
        if not 0.0 <= self.sensitivity <= 1.0:
            raise ValueError(f"sensitivity is {self.sensitivity:g}; it lies between 0 and 1.")
        if not 0.0 <= self.earliest <= self.latest <= 1.0:
            raise ValueError(f"earliest ({self.earliest:g}) and latest ({self.latest:g}) are fractions of the "
                             "steps, with 0 <= earliest <= latest <= 1.")

    @property
    def threshold(self) -> float:
        """The relative rise of the negative's strength that starts it."""
        return MAX_RISE * (1.0 - self.sensitivity)


@dataclass
class AutoState:
    """What a run has found so far; a LATENT carries it to the next pass of a two-pass workflow."""

    schedule: tuple[float, ...] = ()  # the full schedule's sigmas it was found on
    start_step: int | None = None  # the chosen start, once found
    first_strength: float | None = None  # the strength of the first step watched

    def continues(self, schedule: tuple[float, ...], first_step: int) -> bool:
        """Whether a pass starting at `first_step` of `schedule` continues the run this state is of."""
        return first_step > 0 and self.schedule == schedule


def strength(share_map: torch.Tensor) -> float:
    """The batch mean of each item's top-tenth mean of a [batch, height, width] share map."""
    values = share_map.flatten(1).float()
    top = max(1, round(values.shape[1] * TOP_SHARE))
    return float(values.topk(top, dim=1).values.mean())


class CriticalStepFinder:
    """Decides, step by step, when the negative starts; `steps` is the full schedule's length."""

    def __init__(self, settings: AutoStart, schedule, first_step: int = 0, state: AutoState | None = None):
        """`schedule`: the full schedule's sigmas; `state`: what an earlier pass of it found, if any."""
        settings.check()
        self.settings = settings
        sigmas = tuple(float(sigma) for sigma in schedule)
        self.steps = steps = len(sigmas) - 1
        self.earliest = fraction_to_step(settings.earliest, steps)
        self.latest = fraction_to_step(settings.latest, steps)
        carried = state is not None and state.continues(sigmas, first_step)
        self.state = replace(state) if carried else AutoState(sigmas)  # the input LATENT's state stays as it was
        self.strengths: dict[int, float] = {}  # per step watched in this pass
        if self.latest == 0 and self.state.start_step is None:
            self.choose(0, "the latest allowed step is 0")

    @property
    def start_step(self) -> int:
        """The negative's start as known now: the chosen step, or else the latest allowed."""
        return self.state.start_step if self.state.start_step is not None else self.latest

    def step_finished(self, step: int, share_map: torch.Tensor | None) -> None:
        """Step `step` is over (`share_map`: its map, None if unseen); may choose step + 1."""
        state = self.state
        if share_map is None or state.start_step is not None:
            return
        self.strengths[step] = strength(share_map)
        if state.first_strength is None:
            state.first_strength = self.strengths[step]
        rise = self.strengths[step] / state.first_strength - 1.0 if state.first_strength > 0 else 0.0
        if rise >= self.settings.threshold and step + 1 < self.latest:
            self.choose(max(step + 1, self.earliest),
                        f"at step {step} the image's attention to the negative had risen {rise:.1%}, "
                        f"past the {self.settings.threshold:.1%} of sensitivity {self.settings.sensitivity:g}")
        elif step + 1 >= self.latest:
            self.choose(self.latest, "the latest allowed step: the image's attention to the negative had not "
                                     "risen enough before it")

    def choose(self, start: int, why: str) -> None:
        self.state.start_step = start
        tell_user(f"Automatic start: the negative prompt starts at step {start} of {self.steps} ({why}).")
