"""A CFG guider whose unconditional branch switches to the negative prompt at a chosen step.

    before the window:  eps = uncond_before + cfg * (eps(positive) - uncond_before)
    inside the window:  eps = eps(negative) + cfg * (eps(positive) - eps(negative))

where uncond_before is the empty prompt (the paper's setting), a conditioning of the user's
own, or nothing at all (no guidance: the unconditional evaluation is skipped, as ComfyUI does
at cfg 1). Every evaluation goes through ComfyUI's own `sampling_function`, so conds' own
timestep ranges, areas, masks and ControlNets, and other packs' cfg / pre-cfg / post-cfg
functions all see the real unconditional prediction of that step.
"""

import comfy.samplers
import node_helpers

from .negative_window import NegativeTiming, resolve_window
from .step_clock import StepClock

BEFORE_NEGATIVE = ("empty prompt", "early conditioning", "no guidance")
EARLY = "before negative"  # the guider's name for the conds used outside the window


class DelayedNegativeGuider(comfy.samplers.CFGGuider):
    """CFGGuider with conds "positive", "negative" and, unless no guidance, "before negative".

    Steps count the sigmas the guider samples, unless `schedule` gives the full schedule that
    they are a part of, starting at step `first_step` (KSampler Advanced's start_at_step).
    """

    def __init__(self, model_patcher, timing: NegativeTiming, schedule=None, first_step: int = 0):
        super().__init__(model_patcher)
        self.timing = timing
        self.schedule = schedule
        self.first_step = first_step
        self.window = None
        self.clock = None

    def set_conds(self, positive, negative, before_negative=None):
        conds = {"positive": positive, "negative": negative}
        if before_negative is not None:
            # Encoded like a negative prompt (some models treat prompt_type "negative" apart).
            conds[EARLY] = node_helpers.conditioning_set_values(before_negative, {"prompt_type": "negative"})
        self.inner_set_conds(conds)

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                     *args, **kwargs):
        self.window = resolve_window(self.timing, sigmas if self.schedule is None else self.schedule)
        self.clock = StepClock.learn(sampler, self, sigmas, noise, latent_image, denoise_mask, self.model_options,
                                     seed, self.first_step)
        return super().inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                                    disable_pbar, seed, *args, **kwargs)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        step = self.clock.step_of(float(timestep[0]))
        positive = self.conds.get("positive")
        if self.window.uses_negative(step):
            uncond, cfg = self.conds.get("negative"), self.cfg
        elif EARLY in self.conds:
            uncond, cfg = self.conds[EARLY], self.cfg
        elif model_options.get("disable_cfg1_optimization", False):
            # CFG++ samplers read the unconditional prediction; with no guidance it is the
            # positive one, which makes their step the plain (guidance 1) step.
            uncond, cfg = positive, 1.0
        else:
            uncond, cfg = None, 1.0
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, uncond, positive, cfg,
                                                model_options=model_options, seed=seed)
