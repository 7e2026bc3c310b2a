"""Watch a sampler's own loop without running the model: a dry run over the same sigmas.

A sampler's loop is what says which step an evaluation belongs to, and samplers differ (heun
evaluates the next step's sigma before that step begins, sa_solver's PECE evaluates a sigma
twice, new samplers keep arriving). Rather than keep a table of known samplers, the pack runs
the sampler itself once, with a stand-in for the model that answers every evaluation with zeros
at no cost, and writes down what the sampler does: each evaluation's sigma, and each call of
its step callback, which every ComfyUI sampler makes once per step with the step's number.

For every sampler that does not adapt its steps to the model's output, the real run then makes
the same evaluations at the same sigmas in the same order (step_clock.py checks that it does).
"""

from dataclasses import dataclass, field

import comfy.model_patcher
import torch


@dataclass
class SamplerTrace:
    """What one dry run saw: the sigma of every evaluation in order, and the step callbacks as
    (step number, evaluations made before the callback)."""

    sigmas: list[float] = field(default_factory=list)
    callbacks: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None  # the sampler could not be dry-run (a third-party sampler may need the real model)


class StandInModel:
    """Takes the guider's place in the dry run: every attribute is the guider's (samplers read
    its model_sampling, model_patcher, cfg), but an evaluation is only recorded.

    CFG++ samplers hook a post-cfg function into the model options to read the unconditional
    prediction; the stand-in calls the hooks the sampler itself added (with zeros), and no
    other: another pack's post-cfg function may run the model (PAG does).
    """

    def __init__(self, guider, trace: SamplerTrace, hooks_already_there: list):
        self._guider = guider
        self._trace = trace
        self._hooks_already_there = hooks_already_there

    def __getattr__(self, name):
        return getattr(self._guider, name)

    def __call__(self, x, sigma, *args, model_options=None, **kwargs):
        self._trace.sigmas.append(float(sigma.reshape(-1)[0]))
        denoised = torch.zeros_like(x)
        for hook in (model_options or {}).get("sampler_post_cfg_function", []):
            if not any(hook is there for there in self._hooks_already_there):
                denoised = hook({"denoised": denoised, "cond_denoised": torch.zeros_like(x),
                                 "uncond_denoised": torch.zeros_like(x), "cond": None, "uncond": None,
                                 "cond_scale": getattr(self._guider, "cfg", 1.0), "sigma": sigma,
                                 "model": self._guider.inner_model, "model_options": model_options, "input": x})
        return denoised


def dry_run(sampler, guider, sigmas, noise, latent_image=None, denoise_mask=None, model_options=None,
            seed=None) -> SamplerTrace:
    """Run `sampler` over `sigmas` with a stand-in model; nothing of the real run is touched:
    no progress bar, no previews, and the random number generators are left as they were."""
    trace = SamplerTrace()

    def step_callback(step, denoised, x, total_steps):
        trace.callbacks.append((int(step), len(trace.sigmas)))

    options = comfy.model_patcher.create_model_options_clone(model_options or {})
    options.setdefault("transformer_options", {})["sample_sigmas"] = sigmas
    extra_args = {"model_options": options, "seed": seed}
    devices = [noise.device.index or 0] if noise.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        try:
            already_there = list(options.get("sampler_post_cfg_function", []))
            sampler.sample(StandInModel(guider, trace, already_there), sigmas, extra_args, step_callback, noise.clone(),
                           latent_image, denoise_mask, True)
        except Exception as error:  # noqa: BLE001 - any failure means: this sampler cannot be watched
            trace.error = f"{type(error).__name__}: {error}"
    return trace
