"""NAG Settings (Delayed Negative): the negative prompt at cfg 1, through normalized attention guidance.

One companion node that feeds the delayed-negative nodes' optional `nag` input; the behaviour
lives in samplers/nag.py (the formula) and samplers/nag_model.py (where it goes in the model).
"""

from comfy_api.latest import io

from ..samplers.nag import NAGSettings
from .negative_inputs import CATEGORY

NAGType = io.Custom("DELAYED_NEGATIVE_NAG")


class DelayedNegativeNAG(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        defaults = NAGSettings()
        return io.Schema(
            node_id="DelayedNegativeNAG",
            display_name="NAG Settings (Delayed Negative)",
            category=CATEGORY,
            description="Makes the negative prompt act at cfg 1 (Flux dev, Lightning and other distilled models) "
                        "through normalized attention guidance (arXiv 2505.21179), from negative_start on. "
                        "Before the start each step evaluates the positive alone; from it on, the positive and "
                        "the negative together (twice the work of those steps).",
            inputs=[
                io.Float.Input("nag_scale", default=defaults.scale, min=1.0, max=50.0, step=0.1,
                               tooltip="How far the attention is pushed away from the negative prompt's. "
                                       "1 = no effect; 3-7 usual (ComfyUI's NAGuidance default: 5)."),
                io.Float.Input("nag_tau", default=defaults.tau, min=1.0, max=10.0, step=0.01,
                               tooltip="Caps the guided attention at this multiple of the positive's (per "
                                       "image token), which keeps the image from breaking at high scales. "
                                       "Usually 1.5-2.5."),
                io.Float.Input("nag_alpha", default=defaults.alpha, min=0.0, max=1.0, step=0.01,
                               tooltip="Blends the guided attention with the positive's: 1 = the guided "
                                       "alone, 0 = no effect."),
            ],
            outputs=[NAGType.Output("nag", tooltip="Connect to a delayed-negative sampler's 'nag' input, and "
                                                   "set its cfg to 1.")],
        )

    @classmethod
    def execute(cls, nag_scale, nag_tau, nag_alpha):
        settings = NAGSettings(nag_scale, nag_tau, nag_alpha)
        settings.check()
        return io.NodeOutput(settings)


def nag_input():
    return NAGType.Input(
        "nag", optional=True,
        tooltip="Optional, for models sampled at cfg 1: a NAG Settings node. Connected, the negative acts "
                "inside the model's attention from negative_start on (set cfg to 1; before_negative and the "
                "empty prompt are not used: the steps before the start run the positive alone).")


NODES = [DelayedNegativeNAG]
