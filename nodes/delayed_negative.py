"""KSampler (Delayed Negative), KSampler Advanced (Delayed Negative) and Delayed Negative Guider.

Node ids are a public contract (saved workflows name them): never rename, version instead.
"""

import comfy.samplers
from comfy_api.latest import io

from ..samplers.delayed_negative_guider import DelayedNegativeGuider
from ..samplers.ksampler import NEGATIVE_START_KEY, delayed_negative_ksampler
from .auto_start import auto_start_input
from .guidance_schedule import guidance_schedule_input
from .nag import nag_input
from .negative_inputs import CATEGORY, before_negative_inputs, guidance_settings, timing_inputs


def sampling_inputs() -> list:
    """The stock KSampler's inputs after the seed (same names, defaults and ranges)."""
    return [
        io.Int.Input("steps", default=20, min=1, max=10000, tooltip="The number of denoising steps."),
        io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale. Above 1 for the negative to act through CFG; 1 with "
                               "'nag' connected (models sampled at cfg 1)."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS,
                       tooltip="The sampling algorithm. Every sampler switches exactly at negative_start, "
                               "including the extra evaluations of second-order and SDE samplers."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                       tooltip="How noise is removed over the steps. The switch is exact in steps for all."),
        io.Conditioning.Input("positive", tooltip="What to include in the image."),
        io.Conditioning.Input("negative", tooltip="What to remove from the image, used from negative_start on."),
        io.Latent.Input("latent_image", tooltip="The latent image to denoise."),
    ]


def negative_start_output():
    return io.Int.Output("negative_start_step", display_name="negative_start_step",
                         tooltip="The step of the whole schedule at which the negative started (with timing_unit "
                                 "'auto': the step it picked); -1 if it never did. Connect to the attention "
                                 "chart's mark_step.")


def latent_and_start(latent: dict) -> io.NodeOutput:
    start = latent.get(NEGATIVE_START_KEY)
    return io.NodeOutput(latent, -1 if start is None else start)


class DelayedNegativeKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeKSampler",
            display_name="KSampler (Delayed Negative)",
            category=CATEGORY,
            description="The stock KSampler, with the negative prompt applied only from a critical step on "
                        "(arXiv 2406.02965): before it the unconditional branch uses the empty prompt, which "
                        "removes what the negative names without distorting the image.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising the input latent."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="The random seed used for creating the noise."),
                *sampling_inputs(),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="The amount of denoising applied; steps count the steps actually run."),
                *timing_inputs(),
                *before_negative_inputs(),
                guidance_schedule_input(),
                auto_start_input(),
                nag_input(),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised latent."), negative_start_output()],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise,
                negative_start, negative_end, timing_unit, before_negative, clip=None, early_conditioning=None,
                guidance_schedule=None, auto_start=None, nag=None):
        when, before = guidance_settings(cfg, negative_start, negative_end, timing_unit, before_negative, clip,
                                         early_conditioning, guidance_schedule, model, negative, nag)
        return latent_and_start(delayed_negative_ksampler(
            model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, when, before,
            denoise=denoise, guidance=guidance_schedule, auto=auto_start, nag=nag))


class DelayedNegativeKSamplerAdvanced(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeKSamplerAdvanced",
            display_name="KSampler Advanced (Delayed Negative)",
            category=CATEGORY,
            description="The stock KSampler Advanced with a delayed negative. negative_start counts steps of the "
                        "whole schedule, so a two-pass workflow switches at the same step as one pass.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising the input latent."),
                io.Combo.Input("add_noise", options=["enable", "disable"],
                               tooltip="Add the seed's noise first (disable for a second pass)."),
                io.Int.Input("noise_seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="The random seed used for creating the noise."),
                *sampling_inputs(),
                io.Int.Input("start_at_step", default=0, min=0, max=10000,
                             tooltip="The step of the whole schedule this pass starts at."),
                io.Int.Input("end_at_step", default=10000, min=0, max=10000,
                             tooltip="The step of the whole schedule this pass stops at."),
                io.Combo.Input("return_with_leftover_noise", options=["disable", "enable"],
                               tooltip="Keep the remaining noise for a following pass."),
                *timing_inputs(),
                *before_negative_inputs(),
                guidance_schedule_input(),
                auto_start_input(),
                nag_input(),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised latent."), negative_start_output()],
        )

    @classmethod
    def execute(cls, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
                latent_image, start_at_step, end_at_step, return_with_leftover_noise, negative_start, negative_end,
                timing_unit, before_negative, clip=None, early_conditioning=None, guidance_schedule=None,
                auto_start=None, nag=None):
        when, before = guidance_settings(cfg, negative_start, negative_end, timing_unit, before_negative, clip,
                                         early_conditioning, guidance_schedule, model, negative, nag)
        return latent_and_start(delayed_negative_ksampler(
            model, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, when, before,
            add_noise=add_noise == "enable", start_at_step=start_at_step, end_at_step=end_at_step,
            return_with_leftover_noise=return_with_leftover_noise == "enable", guidance=guidance_schedule,
            auto=auto_start, nag=nag))


class DelayedNegativeGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeGuider",
            display_name="Delayed Negative Guider",
            category=CATEGORY,
            description="A CFG guider for SamplerCustomAdvanced whose negative prompt starts at a critical step; "
                        "works with any SAMPLER and SIGMAS. Steps count the SIGMAS it is given.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising."),
                io.Conditioning.Input("positive", tooltip="What to include in the image."),
                io.Conditioning.Input("negative",
                                      tooltip="What to remove from the image, used from negative_start on."),
                io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale. Above 1 for the negative to act through CFG; 1 with "
                               "'nag' connected (models sampled at cfg 1)."),
                *timing_inputs(),
                *before_negative_inputs(),
                guidance_schedule_input(),
                auto_start_input(),
                nag_input(),
            ],
            outputs=[io.Guider.Output(tooltip="Connect to SamplerCustomAdvanced's guider.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, cfg, negative_start, negative_end, timing_unit, before_negative,
                clip=None, early_conditioning=None, guidance_schedule=None, auto_start=None, nag=None):
        when, before = guidance_settings(cfg, negative_start, negative_end, timing_unit, before_negative, clip,
                                         early_conditioning, guidance_schedule, model, negative, nag)
        guider = DelayedNegativeGuider(model, when, guidance=guidance_schedule, auto=auto_start, nag=nag)
        guider.set_conds(positive, negative, before)
        guider.set_cfg(cfg)
        return io.NodeOutput(guider)


NODES = [DelayedNegativeKSampler, DelayedNegativeKSamplerAdvanced, DelayedNegativeGuiderNode]
