"""A CFG guider whose unconditional branch switches to the negative prompt at a chosen step.

    before the window:  eps = uncond_before + cfg * (eps(positive) - uncond_before)
    inside the window:  eps = eps(negative) + cfg * (eps(positive) - eps(negative))

where uncond_before is the empty prompt (the paper's setting), a conditioning of the user's
own, or nothing at all (no guidance: the unconditional evaluation is skipped, as ComfyUI does
at cfg 1). Every evaluation goes through ComfyUI's own `sampling_function`, so conds' own
timestep ranges, areas, masks and ControlNets, and other packs' cfg / pre-cfg / post-cfg
functions all see the real unconditional prediction of that step.

At cfg 1 the negative can act inside the model instead, through normalized attention guidance
(nag.py): with NAG settings, or with a node on the model that reads the unconditional branch at
cfg 1 (ComfyUI's NAGuidance), the steps before the window evaluate the positive alone and the
steps inside it the positive and the negative together, at cfg 1:

    before the window:  eps = eps(positive)
    inside the window:  eps = eps(positive, with the negative's attention guiding it)

An optional GuidanceSchedule (guidance_schedule.py) shapes the rest per step: the cfg, a
ramp into the negative, and an interval outside which there is no guidance. An optional
SharedPrefix (shared_prefix.py) lets a sweep's runs reuse each other's evaluations of the
steps they have in common.
"""

import comfy.samplers
import node_helpers

import nodes

from ..attention.negative_watch import NegativeWatch, watch_negative
from .auto_start import AUTO, AutoStart, AutoState, CriticalStepFinder
from .cfg_check import reads_unconditional_at_cfg1
from .guidance_schedule import GuidanceSchedule, ramp_shares, resolve_plan
from .nag import ACTIVE_KEY, NAGSettings
from .nag_model import with_nag
from .negative_window import NegativeTiming, NegativeWindow, resolve_window
from ..clock.notice import tell_user
from ..clock.step_clock import StepClock

BEFORE_NEGATIVE = ("empty prompt", "early conditioning", "no guidance")
EARLY = "before negative"  # the guider's name for the conds used outside the window


def ramp_name(index: int) -> str:
    return f"negative ramp {index + 1}"


class DelayedNegativeGuider(comfy.samplers.CFGGuider):
    """CFGGuider with conds "positive", "negative", unless no guidance "before negative", and one
    "negative ramp k" per ramp step.

    Steps count the sigmas the guider samples, unless `schedule` gives the full schedule that
    they are a part of, starting at step `first_step` (KSampler Advanced's start_at_step).
    """

    def __init__(self, model_patcher, timing: NegativeTiming, schedule=None, first_step: int = 0,
                 guidance: GuidanceSchedule | None = None, auto: AutoStart | None = None,
                 auto_state: AutoState | None = None, nag: NAGSettings | None = None):
        self.auto = (auto or AutoStart()) if timing.unit == AUTO else None
        self.auto_state = auto_state
        self.watch = NegativeWatch() if self.auto else None
        if self.watch is not None:
            model_patcher = watch_negative(model_patcher, self.watch)
        self.nag = nag
        if nag is not None:
            model_patcher = with_nag(model_patcher)
        super().__init__(model_patcher)
        self.timing = timing
        self.schedule = schedule
        self.first_step = first_step
        self.guidance = guidance or GuidanceSchedule()
        self.shared = None  # a SharedPrefix, set by a sweep
        self.finder = None  # the automatic start's CriticalStepFinder, during a run
        self.window = None
        self.plan = None
        self.clock = None
        self.step = None  # the step of the evaluation under way (outer_predict_noise)
        self.in_attention = False  # the negative acts through the model's attention at cfg 1 (NAG), this run

    def set_conds(self, positive, negative, before_negative=None):
        conds = {"positive": positive, "negative": negative}
        if self.watch is not None:
            self.watch.negative_context = negative[0][0]
        if before_negative is not None:
            # Encoded like a negative prompt (some models treat prompt_type "negative" apart).
            conds[EARLY] = node_helpers.conditioning_set_values(before_negative, {"prompt_type": "negative"})
        if self.guidance.ramp_steps:
            if before_negative is None:
                raise ValueError("A negative ramp blends from the conditioning used before the negative, and "
                                 "before_negative is 'no guidance': pick 'empty prompt' or 'early conditioning', "
                                 "or set ramp_steps to 0.")
            for index, share in enumerate(ramp_shares(self.guidance.ramp_steps)):
                conds[ramp_name(index)] = nodes.ConditioningAverage().addWeighted(negative, conds[EARLY], share)[0]
        self.inner_set_conds(conds)

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                     *args, **kwargs):
        full_schedule = sigmas if self.schedule is None else self.schedule
        if self.auto is None:
            self.window = resolve_window(self.timing, full_schedule)
        else:
            self.finder = CriticalStepFinder(self.auto, full_schedule, self.first_step, self.auto_state)
            self.watch.begin_run()
            self.watch.positive_uuids = {cond.get("uuid") for cond in self.conds.get("positive") or []} - {None}
            self.window = NegativeWindow(self.finder.start_step, len(full_schedule) - 1)
        self.plan = resolve_plan(self.guidance, self.cfg, full_schedule)
        self.in_attention = self.nag is not None or (self.cfg <= 1.0 and reads_unconditional_at_cfg1(self.model_patcher))
        if self.in_attention and self.auto is None and self.shared is None and self.window.start_step >= len(full_schedule) - 1:
            tell_user(f"The negative prompt never acts in this run: its start (step {self.window.start_step}) is at "
                      f"or past the last of the {len(full_schedule) - 1} steps, so every step evaluates the "
                      "positive alone. Lower negative_start to let NAG use it.")
        self.clock = StepClock.learn(sampler, self, sigmas, noise, latent_image, denoise_mask, self.model_options,
                                     seed, self.first_step)
        samples = super().inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                                       disable_pbar, seed, *args, **kwargs)
        if self.finder is not None:
            self.follow_watch(len(full_schedule))  # the last steps seen may choose a later pass's start
        return samples

    def unconditional(self, step: int):
        """The unconditional conds of a step, or None for no guidance."""
        if self.in_attention:
            return self.conds.get("negative") if self.window.uses_negative(step) else None
        if not self.plan.guided_at(step):
            return None
        if self.window.uses_negative(step):
            into_ramp = step - self.window.start_step
            if into_ramp < self.plan.ramp_steps:
                return self.conds[ramp_name(into_ramp)]
            return self.conds.get("negative")
        return self.conds.get(EARLY)

    def outer_predict_noise(self, x, timestep, model_options={}, seed=None):
        # Every evaluation the sampler asks for is counted here, outside the PREDICT_NOISE wrappers:
        # a cache among them (LazyCache) may answer one without calling predict_noise, and a clock
        # that missed it would put the next evaluations in the wrong steps.
        self.step = self.clock.step_of(float(timestep[0]))
        return super().outer_predict_noise(x, timestep, model_options, seed)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        step = self.step
        if self.finder is not None:
            self.follow_watch(step)
        if self.shared is None:
            return self.guided_prediction(step, x, timestep, model_options, seed)
        return self.shared.predict(step, x, timestep,
                                   lambda: self.guided_prediction(step, x, timestep, model_options, seed))

    def follow_watch(self, step: int):
        """Before `step`'s evaluation: let the steps that have finished choose the start."""
        watch = self.watch
        if step != watch.step:
            for finished in sorted(s for s in watch.steps_seen() if s < step):
                self.finder.step_finished(finished, watch.pop(finished))
            self.window = NegativeWindow(self.finder.start_step, self.window.end_step)
            watch.active = self.finder.state.start_step is None
        watch.begin_evaluation(step)

    def guided_prediction(self, step, x, timestep, model_options, seed):
        positive = self.conds.get("positive")
        uncond = self.unconditional(step)
        if self.in_attention:
            return self.attention_guided_prediction(positive, uncond, x, timestep, model_options, seed)
        cfg = self.plan.cfg_at(step)
        if uncond is None:
            cfg = 1.0
            if model_options.get("disable_cfg1_optimization", False):
                # CFG++ samplers read the unconditional prediction; with no guidance it is the
                # positive one, which makes their step the plain (guidance 1) step.
                uncond = positive
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, uncond, positive, cfg,
                                                model_options=model_options, seed=seed)

    def attention_guided_prediction(self, positive, negative, x, timestep, model_options, seed):
        """At cfg 1: the positive alone (negative None), or the positive and the negative in one
        batch with the negative acting in the attention (this guider's NAG settings, or the
        model's own NAGuidance)."""
        if negative is None:
            if self.sampler_reads_unconditional(model_options):
                negative = positive  # CFG++ samplers: the plain step, as in guided_prediction
            else:  # the model's NAGuidance asks for the unconditional branch at cfg 1: not before the start
                model_options = {**model_options, "disable_cfg1_optimization": False}
        else:
            model_options = {**model_options, "disable_cfg1_optimization": True}
            if self.nag is not None:
                options = model_options.get("transformer_options", {})
                model_options["transformer_options"] = {**options, ACTIVE_KEY: self.nag}
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, negative, positive, 1.0,
                                                model_options=model_options, seed=seed)

    def sampler_reads_unconditional(self, model_options) -> bool:
        """Whether the sampler itself (a CFG++ one) added a post-cfg function that reads the
        unconditional prediction, beyond the model's own."""
        return model_options.get("disable_cfg1_optimization", False) and \
            len(model_options.get("sampler_post_cfg_function", [])) > \
            len(self.model_options.get("sampler_post_cfg_function", []))
