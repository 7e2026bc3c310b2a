"""Automatic Start (Delayed Negative): the settings of timing_unit 'auto'.

One companion node that feeds the delayed-negative nodes' optional `auto_start` input; the
behaviour lives in samplers/auto_start.py (the rule) and attention/negative_watch.py (the signal).
"""

from comfy_api.latest import io

from ..samplers.auto_start import AutoStart
from .negative_inputs import CATEGORY

AutoStartType = io.Custom("AUTO_START")


class DelayedNegativeAutoStart(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeAutoStart",
            display_name="Automatic Start (Delayed Negative)",
            category=CATEGORY,
            description="Settings for timing_unit 'auto': the negative starts once the image has begun to form "
                        "what it names, read from the positive branch's attention while sampling (no extra "
                        "model evaluation). The step it picks is shown under the sampler and in the console.",
            inputs=[
                io.Float.Input("sensitivity", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="How readily the negative starts: it starts once the image's attention "
                                       "to the negative prompt has risen by 4% x (1 - sensitivity) since the "
                                       "first step. 1 = at the earliest allowed step; 0 = waits for a 4% rise. "
                                       "Higher removes more, lower keeps more of the image."),
                io.Float.Input("earliest", default=0.1, min=0.0, max=1.0, step=0.05,
                               tooltip="The earliest step the negative may start at, as a fraction of the "
                                       "steps (rounded up: 0.1 of 30 steps = step 3)."),
                io.Float.Input("latest", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="The latest step the negative may start at, as a fraction of the steps: "
                                       "if the image has not shown it by then, the negative starts there."),
            ],
            outputs=[AutoStartType.Output("auto_start", tooltip="Connect to a delayed-negative sampler's "
                                                                "'auto_start' input (timing_unit 'auto').")],
        )

    @classmethod
    def execute(cls, sensitivity, earliest, latest):
        settings = AutoStart(sensitivity, earliest, latest)
        settings.check()
        return io.NodeOutput(settings)


def auto_start_input():
    return AutoStartType.Input(
        "auto_start", optional=True,
        tooltip="Optional, for timing_unit 'auto': an Automatic Start node's settings. Not connected: "
                "sensitivity 0.5, earliest 0.1 and latest 0.5 of the steps.")


NODES = [DelayedNegativeAutoStart]
