"""Guidance Schedule (Delayed Negative): the cfg of each step, a negative ramp, a guidance interval.

One companion node that feeds the three delayed-negative nodes' optional `guidance_schedule`
input; the behaviour lives in samplers/guidance_schedule.py.
"""

from comfy_api.latest import io

from ..samplers.guidance_schedule import CFG_CURVES, GuidanceSchedule, parse_cfg_list
from ..samplers.negative_window import NEVER, START_UNITS, NegativeTiming
from .negative_inputs import CATEGORY

GuidanceScheduleType = io.Custom("GUIDANCE_SCHEDULE")


class DelayedNegativeGuidanceSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeGuidanceSchedule",
            display_name="Guidance Schedule (Delayed Negative)",
            category=CATEGORY,
            description="Shapes guidance over the steps for KSampler (Delayed Negative), its Advanced form and "
                        "the Delayed Negative Guider: cfg per step, a negative that ramps in over a few steps "
                        "instead of switching, and guidance only inside an interval. Every change lands on "
                        "whole steps of the schedule, for every sampler.",
            inputs=[
                io.Combo.Input(
                    "cfg_curve", options=list(CFG_CURVES), default="constant",
                    tooltip="How cfg changes over the steps. constant: the sampler's own cfg on every step. "
                            "list: cfg_list, one value per step. linear / cosine: from cfg_first at "
                            "curve_first_step to cfg_last at curve_last_step, flat outside that range."),
                io.String.Input(
                    "cfg_list", default="8, 8, 7, 6",
                    tooltip="For cfg_curve 'list': one cfg per step, from step 0 of the whole schedule, comma "
                            "separated. The last value holds to the end."),
                io.Float.Input("cfg_first", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="For a linear or cosine curve: the cfg at curve_first_step and before."),
                io.Float.Input("cfg_last", default=4.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="For a linear or cosine curve: the cfg at curve_last_step and after."),
                io.Int.Input("curve_first_step", default=0, min=0, max=10000,
                             tooltip="The step where the curve leaves cfg_first (steps of the whole schedule)."),
                io.Int.Input("curve_last_step", default=-1, min=-1, max=10000,
                             tooltip="The step where the curve reaches cfg_last; -1 = the last step."),
                io.Int.Input(
                    "ramp_steps", default=0, min=0, max=1000,
                    tooltip="0: the negative switches in at negative_start (the paper's setting). N: over N "
                            "steps from negative_start the unconditional conditioning moves from the one used "
                            "before (e.g. the empty prompt) to the negative, with the negative's weight 1/(N+1), "
                            "2/(N+1), ... then 1. Blended in the conditioning: no extra model evaluations."),
                io.Float.Input(
                    "guidance_start", default=0.0, min=0.0, max=10000.0, step=1.0, round=0.0001,
                    tooltip="Guidance acts only from this point on (a guidance interval), in guidance_unit. "
                            "Outside the interval the step runs without guidance (cfg 1), which skips the "
                            "unconditional evaluation. 0 = from the first step."),
                io.Float.Input(
                    "guidance_end", default=NEVER, min=NEVER, max=10000.0, step=1.0, round=0.0001,
                    tooltip="Guidance stops from this point on, in guidance_unit. -1 = to the last step."),
                io.Combo.Input(
                    "guidance_unit", options=list(START_UNITS), default="step",
                    tooltip="The unit of guidance_start and guidance_end, like the negative's timing_unit: a "
                            "step, a fraction of the steps (rounded up to a whole step), or a sigma (the first "
                            "step whose sigma is at or below it)."),
            ],
            outputs=[GuidanceScheduleType.Output(
                tooltip="Connect to the guidance_schedule input of a delayed-negative sampler or guider.")],
        )

    @classmethod
    def execute(cls, cfg_curve, cfg_list, cfg_first, cfg_last, curve_first_step, curve_last_step, ramp_steps,
                guidance_start, guidance_end, guidance_unit):
        if cfg_curve not in CFG_CURVES:
            raise ValueError(f"Unknown cfg_curve '{cfg_curve}'; use one of {', '.join(CFG_CURVES)}.")
        values = parse_cfg_list(cfg_list) if cfg_curve == "list" else ()
        if cfg_curve in ("linear", "cosine") and 0 <= curve_last_step < curve_first_step:
            raise ValueError(f"curve_last_step ({curve_last_step}) comes before curve_first_step "
                             f"({curve_first_step}): set it after, or -1 for the last step.")
        return io.NodeOutput(GuidanceSchedule(
            cfg_curve=cfg_curve, cfg_list=values, cfg_first=cfg_first, cfg_last=cfg_last,
            curve_first_step=curve_first_step, curve_last_step=curve_last_step, ramp_steps=ramp_steps,
            guidance=NegativeTiming(guidance_start, guidance_end, guidance_unit)))


def guidance_schedule_input():
    return GuidanceScheduleType.Input(
        "guidance_schedule", optional=True,
        tooltip="Optional: a Guidance Schedule node's output, for cfg per step, a negative ramp or a guidance "
                "interval. Not connected: the cfg above on every step and a hard switch at negative_start.")


NODES = [DelayedNegativeGuidanceSchedule]
