"""KSampler Sweep (Delayed Negative): one seed with the negative starting at several steps, in one node.

Replaces a sweep workflow of several copied samplers; the runs share the steps they have in
common (samplers/sweep.py). Node ids are a public contract: never rename, version instead.
"""

from comfy_api.latest import io

from ..render.labelled_grid import labelled_grid
from ..samplers.delayed_negative_guider import BEFORE_NEGATIVE
from ..samplers.negative_window import NEVER, START_UNITS
from ..samplers.sweep import parse_starts, sweep
from .auto_start import auto_start_input
from .delayed_negative import sampling_inputs
from .guidance_schedule import guidance_schedule_input
from .nag import nag_input
from .negative_inputs import CATEGORY, before_negative_inputs, guidance_settings


class DelayedNegativeSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeSweep",
            display_name="KSampler Sweep (Delayed Negative)",
            category=CATEGORY,
            description="Samples one seed with the negative prompt starting at each of several steps and returns "
                        "the images as a batch and as a labelled grid, to pick the critical step by eye. Each "
                        "picture equals a separate KSampler (Delayed Negative) run with that start; the steps "
                        "the runs have in common are computed once.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising the input latent."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="The random seed: the same for every start."),
                *sampling_inputs(),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="The amount of denoising applied; steps count the steps actually run."),
                io.String.Input("starts", default="0, 3, 6, 10, never",
                                tooltip="The negative starts to compare, comma-separated, in timing_unit; "
                                        "'never' = the empty prompt throughout. 0 = the stock KSampler. "
                                        "'auto' = the automatic start (its caption says the step it picked; "
                                        "settings: the optional 'auto_start' input)."),
                io.Combo.Input("timing_unit", options=list(START_UNITS), default="step",
                               tooltip="The unit of the starts: a sampler step, a fraction of the steps "
                                       "(rounded up), or a sigma (the first step whose sigma is at or below it)."),
                io.Combo.Input("before_negative", options=list(BEFORE_NEGATIVE), default="empty prompt",
                               tooltip="What the unconditional branch uses before each start: the empty prompt "
                                       "(connect 'clip'), your own 'early_conditioning', or no guidance."),
                io.Vae.Input("vae", tooltip="Decodes the latents into the images and the grid."),
                io.Int.Input("columns", default=0, min=0, max=64,
                             tooltip="Pictures per row of the grid; 0 = all in one row."),
                *before_negative_inputs(),
                guidance_schedule_input(),
                auto_start_input(),
                nag_input(),
            ],
            outputs=[
                io.Latent.Output("latents", tooltip="Every start's latent, in the order of 'starts' (batch items "
                                                    "of one start together)."),
                io.Image.Output("images", tooltip="The decoded images, in the same order."),
                io.Image.Output("grid", tooltip="The images in one grid, each captioned with its start."),
            ],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise,
                starts, timing_unit, before_negative, vae, columns, clip=None, early_conditioning=None,
                guidance_schedule=None, auto_start=None, nag=None):
        chosen = parse_starts(starts)
        # The shared checks, and the early conditioning built once for every start that needs it
        # (as for any start after step 0; a start of 0 leaves it unused).
        _, early = guidance_settings(cfg, 1.0, NEVER, "step", before_negative, clip, early_conditioning,
                                     guidance_schedule, model, negative, nag)
        result = sweep(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, chosen,
                       timing_unit, early, denoise, guidance_schedule, auto_start, nag)
        out, images, labels = result.decoded(latent_image, vae)
        grid = labelled_grid([images[index:index + 1] for index in range(images.shape[0])], labels, columns)
        return io.NodeOutput(out, images, grid)


NODES = [DelayedNegativeSweep]
