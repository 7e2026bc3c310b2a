"""Where ComfyUI core's start percentages land, in steps (for the README's "Guidance over time").

Core times a conditioning with ConditioningSetTimestepRange (and the start/end percent of
ControlNets and hooks): a percent becomes a sigma through the model's `percent_to_sigma`, and
the conditioning applies at every evaluation whose sigma is at or below it. That sigma is on
the model's training noise scale, not on the sampler's schedule, so the first step it applies
at depends on the scheduler and the model's shift. This script reads both from the host's own
code and prints, per model family and scheduler, the step core starts at against the step the
percent names (the fraction of the steps, rounded up to a whole step, as the pack's
"fraction of steps" unit does).

    .venv/bin/python -m devtools.host.core_route_steps      (also part of `make bench`)
"""

import math
from devtools.host import comfy_env  # noqa: E402,F401  (ComfyUI on sys.path, --cpu without a GPU)

import comfy.model_sampling as sampling  # noqa: E402
import comfy.samplers  # noqa: E402

STEPS = 30
STARTS = (0.1, 0.2, 0.3, 0.5)
SCHEDULERS = ("normal", "karras", "exponential", "simple", "beta")


def model_samplings() -> dict:
    """The noise scales of three families, built from the host's classes as its loaders do."""
    class SD15(sampling.ModelSamplingDiscrete, sampling.EPS):
        pass

    class SD3(sampling.ModelSamplingDiscreteFlow, sampling.CONST):
        pass

    class Flux(sampling.ModelSamplingFlux, sampling.CONST):
        pass

    sd3, flux = SD3(), Flux()
    sd3.set_parameters(shift=3.0)  # SD3.x's default shift
    flux.set_parameters(shift=1.15)  # Flux at 1024x1024 (ModelSamplingFlux's max_shift)
    return {"SD1.5 (eps, discrete)": SD15(), "SD3.x (flow, shift 3)": sd3, "Flux (flow, shift 1.15)": flux}


def core_first_step(model_sampling, sigmas, percent: float) -> int:
    limit = model_sampling.percent_to_sigma(percent)
    return next(step for step, sigma in enumerate(sigmas[:-1]) if float(sigma) <= limit)


def run(options=None) -> list[str]:
    lines = [f"ComfyUI core's start percent (ConditioningSetTimestepRange) in steps, {STEPS} steps: "
             "the step it starts at / the step the percent names (ceil(percent x steps))"]
    header = f"  {'model':26}{'scheduler':13}" + "".join(f"{f'start {p:g}':>13}" for p in STARTS)
    lines.append(header)
    worst = []
    for family, model_sampling in model_samplings().items():
        for scheduler in SCHEDULERS:
            sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, STEPS)
            cells = []
            for percent in STARTS:
                named = math.ceil(percent * STEPS - 1e-9)
                core = core_first_step(model_sampling, sigmas, percent)
                cells.append(f"{core:>3} / {named:<3}".rjust(13))
                worst.append((abs(core - named), family, scheduler, percent, core, named))
            lines.append(f"  {family:26}{scheduler:13}" + "".join(cells))
    error, family, scheduler, percent, core, named = max(worst)
    lines.append(f"  largest error: {error} steps ({family}, {scheduler}, start {percent:g}: step {core} "
                 f"instead of {named}); the pack's units land on the named step for every sampler.")
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
