"""Which sampler step a model evaluation belongs to, learned from the sampler itself.

A sampler's step i goes from sigmas[i] to sigmas[i+1]. How many evaluations a step makes, and
at which sigmas, is the sampler's business: heun evaluates the next step's sigma before that
step begins, dpm_2 a midpoint, sa_solver's PECE one sigma twice, and samplers that do not exist
yet will do something else. Sigmas alone cannot tell "heun's corrector at sigmas[i+1]" from
"step i+1's first evaluation at sigmas[i+1]", so the clock does not guess from sigmas.

Instead it learns the pattern (dry_run.py): the sampler runs once over the same sigmas with a
stand-in model, and its own step callback, which ComfyUI samplers call once per step with the
step's number right after the step's first evaluation (the callback reports that evaluation's
prediction), marks where each step begins. The learned pattern is accepted only if it makes
sense for the schedule: one callback per step, 0, 1, ... in order, each step's first
evaluation inside its own sigma interval. A sampler that reports at the end of its step instead
is recognised the same way (its first evaluation follows the previous step's callback). The real
run then attributes its k-th evaluation to the step of the dry run's k-th, after checking that
it is at the same sigma.

Where the pack cannot tell (a sampler that does not report its steps, reports them on a grid
of its own such as dpm_fast, adapts its steps to the model like dpm_adaptive, or fails the dry
run), the documented fallback is "by sigma": an evaluation belongs to the step whose sigma
interval sigmas[i] >= sigma > sigmas[i+1] holds it, and the user is told so (see notice.py),
never a silent off-by-one.
"""

import bisect
from itertools import pairwise

from .dry_run import SamplerTrace, dry_run
from .notice import tell_user

# Sigmas reach the model as float32 products with ones; allow for a rounding difference.
SAME_SIGMA = 1e-5


class StepClock:
    """Attributes each model evaluation of one sampling run to a step of the full schedule.

    `sigmas` are the sigmas this run samples; `first_step` is the number of the step they start
    at in the full schedule (KSampler Advanced's start_at_step), so step numbers stay those of
    the whole schedule when sampling is split into passes. `steps_of_evaluations` is the learned
    pattern (the step of each evaluation, in order), or None to go by sigma from the start.
    """

    def __init__(self, sigmas, first_step: int = 0, steps_of_evaluations=None, expected_sigmas=None,
                 sampler_name: str = "this sampler"):
        self.sigmas = [float(s) for s in sigmas]
        self.descending = [-s for s in self.sigmas]
        self.steps = len(self.sigmas) - 1
        self.first_step = first_step
        self.pattern = steps_of_evaluations
        self.expected_sigmas = expected_sigmas
        self.sampler_name = sampler_name
        self.evaluations = 0

    @classmethod
    def learn(cls, sampler, guider, sigmas, noise, latent_image=None, denoise_mask=None, model_options=None,
              seed=None, first_step: int = 0) -> "StepClock":
        """Dry-run `sampler` over `sigmas` and build the clock from what it did."""
        name = sampler_name(sampler)
        trace = dry_run(sampler, guider, sigmas, noise, latent_image, denoise_mask, model_options, seed)
        schedule = [float(s) for s in sigmas]
        pattern = steps_from_trace(trace, schedule)
        if pattern is None:
            tell_user(f"{name} does not report its steps on this schedule ({why_not(trace, schedule)}), so "
                      "the negative's window applies by sigma: an evaluation counts for the step whose sigma "
                      "interval holds it.")
            return cls(sigmas, first_step, None, None, name)
        return cls(sigmas, first_step, pattern, trace.sigmas, name)

    def step_by_sigma(self, sigma: float) -> int:
        """The step i with sigmas[i] >= sigma > sigmas[i+1], within the run's steps."""
        index = bisect.bisect_right(self.descending, -sigma * (1 - SAME_SIGMA)) - 1
        return min(max(index, 0), self.steps - 1)

    def step_of(self, sigma: float) -> int:
        """The full-schedule step of an evaluation at `sigma`; call once per evaluation, in order."""
        index = self.evaluations
        self.evaluations += 1
        if self.pattern is not None and not self.follows_pattern(index, sigma):
            tell_user(f"{self.sampler_name} evaluated the model at sigma {sigma:.5g} where its dry run "
                      f"predicted {self.expected_at(index)} (evaluation {index + 1}); it adapts its steps to the "
                      "model, so from here on the negative's window applies by sigma.")
            self.pattern = None
        step = self.pattern[index] if self.pattern is not None else self.step_by_sigma(sigma)
        return self.first_step + step

    def follows_pattern(self, index: int, sigma: float) -> bool:
        if index >= len(self.pattern):
            return False
        expected = self.expected_sigmas[index]
        return abs(sigma - expected) <= SAME_SIGMA * max(abs(expected), 1e-3)

    def expected_at(self, index: int) -> str:
        return f"sigma {self.expected_sigmas[index]:.5g}" if index < len(self.expected_sigmas) else "no evaluation"


def sampler_name(sampler) -> str:
    function = getattr(sampler, "sampler_function", None)
    name = getattr(function, "__name__", None) or type(sampler).__name__
    return f"The sampler '{name.removeprefix('sample_').removesuffix('_function')}'"


def steps_from_trace(trace: SamplerTrace, schedule: list[float]) -> list[int] | None:
    """The step of every evaluation of the dry run, or None if the trace does not fit the schedule."""
    if trace.error is not None or not trace.sigmas:
        return None
    steps = len(schedule) - 1
    if [step for step, _ in trace.callbacks] != list(range(steps)):
        return None
    made_before = [count for _, count in trace.callbacks]
    # A callback right after the step's first evaluation (every ComfyUI sampler), or at its end.
    for first_evaluations in ([count - 1 for count in made_before], [0] + made_before[:-1]):
        if starts_fit_schedule(first_evaluations, trace.sigmas, schedule):
            return [max(bisect.bisect_right(first_evaluations, index) - 1, 0) for index in range(len(trace.sigmas))]
    return None


def starts_fit_schedule(first_evaluations: list[int], evaluation_sigmas: list[float], schedule: list[float]) -> bool:
    """Each step's first evaluation exists, comes after the previous step's, and lies in its own
    step: at its own sigma, or below the previous step's sigma and above the next step's."""
    if any(index < 0 or index >= len(evaluation_sigmas) for index in first_evaluations):
        return False
    if any(later <= earlier for earlier, later in pairwise(first_evaluations)):
        return False
    return all(in_step(evaluation_sigmas[index], step, schedule) for step, index in enumerate(first_evaluations))


def in_step(sigma: float, step: int, schedule: list[float]) -> bool:
    if abs(sigma - schedule[step]) <= SAME_SIGMA * max(schedule[step], 1e-3):
        return True
    above_next = sigma > schedule[step + 1] * (1 + SAME_SIGMA) + 1e-12
    below_previous = step == 0 or sigma < schedule[step - 1] * (1 - SAME_SIGMA)
    return above_next and below_previous


def why_not(trace: SamplerTrace, schedule: list[float]) -> str:
    if trace.error is not None:
        return f"its dry run failed: {trace.error}"
    reported = [step for step, _ in trace.callbacks]
    if reported != list(range(len(schedule) - 1)):
        return f"it reported {len(reported)} steps for a schedule of {len(schedule) - 1}"
    return "its steps do not begin at the schedule's sigmas"
