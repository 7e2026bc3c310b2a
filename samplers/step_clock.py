"""Which sampler step a model evaluation belongs to.

A sampler's step i goes from sigmas[i] to sigmas[i+1]. Most samplers evaluate the model at
sigmas[i] and, if second-order or SDE, at sigmas between the two; those evaluations belong to
step i by their sigma alone. A few samplers also evaluate *at* the next step's sigma inside
step i (heun's corrector, heunpp2, sa_solver's PECE corrector). Sigma cannot tell that
evaluation from the first one of step i+1, so for these samplers a new step starts only when
the sigma stops falling: every step after the first begins at or above where the last
evaluation was.
"""

import bisect

import comfy.k_diffusion.sampling as k_diffusion

# Samplers whose step i evaluates the model at sigmas[i+1] (or beyond) as well.
EVALUATE_AT_NEXT_SIGMA = {
    k_diffusion.sample_heun,
    k_diffusion.sample_heunpp2,
    k_diffusion.sample_sa_solver_pece,
}
# Sigmas reach the model as float32 products with ones; allow for a rounding difference.
SAME_SIGMA = 1e-5


def evaluates_at_next_sigma(sampler) -> bool:
    """True for a ComfyUI SAMPLER whose steps also evaluate the model at the next step's sigma."""
    function = getattr(sampler, "sampler_function", None)
    options = getattr(sampler, "extra_options", {}) or {}
    return function in EVALUATE_AT_NEXT_SIGMA or (
        function is k_diffusion.sample_sa_solver and bool(options.get("use_pece")))


class StepClock:
    """Attributes each model evaluation of one sampling run to a step of the full schedule.

    `sigmas` are the sigmas this run samples; `first_step` is the number of the step they start
    at in the full schedule (KSampler Advanced's start_at_step), so step numbers stay those of
    the whole schedule when sampling is split into passes.
    """

    def __init__(self, sigmas, first_step: int = 0, evaluates_at_next_sigma: bool = False):
        self.descending = [-float(s) for s in sigmas]
        self.steps = len(self.descending) - 1
        self.first_step = first_step
        self.evaluates_at_next_sigma = evaluates_at_next_sigma
        self.last_sigma = None
        self.current = 0

    def step_by_sigma(self, sigma: float) -> int:
        """The step i with sigmas[i] >= sigma > sigmas[i+1], within the run's steps."""
        index = bisect.bisect_right(self.descending, -sigma * (1 - SAME_SIGMA)) - 1
        return min(max(index, 0), self.steps - 1)

    def step_of(self, sigma: float) -> int:
        """The full-schedule step of an evaluation at `sigma`; call once per evaluation, in order."""
        if not self.evaluates_at_next_sigma:
            self.current = self.step_by_sigma(sigma)
        elif self.last_sigma is None or sigma >= self.last_sigma * (1 - SAME_SIGMA):
            self.current = self.step_by_sigma(sigma)
        self.last_sigma = sigma
        return self.first_step + self.current
