"""Which sampler step a model evaluation belongs to.

A sampler's step i goes from sigmas[i] to sigmas[i+1] and starts with an evaluation at
sigmas[i]. What else it evaluates differs, so the clock follows one of three rules:

- "grid" (most samplers): the first evaluation of every step is at its own sigma on the
  schedule (sa_solver's PECE evaluates it twice); evaluations off the schedule, such as the
  midpoints of dpm_2 or dpmpp_sde, belong to the step under way.
- "next sigma" (heun, heunpp2, and the ancestral second-order samplers, whose midpoint
  sqrt(sigma * sigma_down) *is* the next step's sigma at eta 1): a step also evaluates the
  model at the next step's sigma (heunpp2 even the one after), which sigma alone cannot tell
  from the next step's first evaluation. Within a step the sigma only falls, so a step starts
  where the sigma stops falling, or where an evaluation lands back on the schedule after one
  off it (an ancestral midpoint at eta below 1, which can fall below the next step's sigma).
- "by sigma" (dpm_fast, dpm_adaptive): these evaluate on a log-SNR grid of their own, never
  at the schedule's sigmas; an evaluation belongs to the step whose sigma interval holds it.
"""

import bisect

import comfy.k_diffusion.sampling as k_diffusion

GRID, NEXT_SIGMA, BY_SIGMA = "grid", "next sigma", "by sigma"
NEXT_SIGMA_FUNCTIONS = {
    k_diffusion.sample_heun, k_diffusion.sample_heunpp2,
    k_diffusion.sample_dpm_2_ancestral, k_diffusion.sample_dpm_2_ancestral_RF,
    k_diffusion.sample_dpmpp_2s_ancestral, k_diffusion.sample_dpmpp_2s_ancestral_RF,
    k_diffusion.sample_dpmpp_2s_ancestral_cfg_pp,
}
# comfy.samplers.ksampler() wraps these two in closures of these names.
BY_SIGMA_FUNCTION_NAMES = {"dpm_fast_function", "dpm_adaptive_function"}
# Sigmas reach the model as float32 products with ones; allow for a rounding difference.
SAME_SIGMA = 1e-5


def clock_rule(sampler) -> str:
    """The rule for a ComfyUI SAMPLER object (see the module docstring)."""
    function = getattr(sampler, "sampler_function", None)
    if function in NEXT_SIGMA_FUNCTIONS:
        return NEXT_SIGMA
    if getattr(function, "__name__", "") in BY_SIGMA_FUNCTION_NAMES:
        return BY_SIGMA
    return GRID


class StepClock:
    """Attributes each model evaluation of one sampling run to a step of the full schedule.

    `sigmas` are the sigmas this run samples; `first_step` is the number of the step they start
    at in the full schedule (KSampler Advanced's start_at_step), so step numbers stay those of
    the whole schedule when sampling is split into passes.
    """

    def __init__(self, sigmas, first_step: int = 0, rule: str = GRID):
        self.sigmas = [float(s) for s in sigmas]
        self.descending = [-s for s in self.sigmas]
        self.steps = len(self.sigmas) - 1
        self.first_step = first_step
        self.rule = rule
        self.last_sigma = None
        self.last_on_schedule = True
        self.current = None

    def step_by_sigma(self, sigma: float) -> int:
        """The step i with sigmas[i] >= sigma > sigmas[i+1], within the run's steps."""
        index = bisect.bisect_right(self.descending, -sigma * (1 - SAME_SIGMA)) - 1
        return min(max(index, 0), self.steps - 1)

    def on_schedule(self, sigma: float, step: int) -> bool:
        return abs(sigma - self.sigmas[step]) <= SAME_SIGMA * self.sigmas[step]

    def starts_a_step(self, sigma: float) -> bool:
        if self.current is None or self.rule == BY_SIGMA:
            return True
        step = self.step_by_sigma(sigma)
        lands_on_next_step = step > self.current and self.on_schedule(sigma, step)
        if self.rule == NEXT_SIGMA:
            stopped_falling = sigma >= self.last_sigma * (1 - SAME_SIGMA)
            return stopped_falling or (lands_on_next_step and not self.last_on_schedule)
        return lands_on_next_step

    def step_of(self, sigma: float) -> int:
        """The full-schedule step of an evaluation at `sigma`; call once per evaluation, in order."""
        if self.starts_a_step(sigma):
            self.current = self.step_by_sigma(sigma)
        self.last_sigma = sigma
        self.last_on_schedule = self.on_schedule(sigma, self.step_by_sigma(sigma))
        return self.first_step + self.current
