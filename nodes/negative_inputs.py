"""The inputs every delayed-negative node shares, and how they become the guider's settings."""

from comfy_api.latest import io

from ..samplers.auto_start import AUTO
from ..samplers.cfg_check import check_cfg
from ..samplers.delayed_negative_guider import BEFORE_NEGATIVE
from ..samplers.guidance_schedule import GuidanceSchedule
from ..samplers.nag import NAGSettings
from ..samplers.negative_window import NEVER, START_UNITS, NegativeTiming
from .empty_prompt import empty_in_place_of, empty_prompt

CATEGORY = "sampling/delayed negative"


def timing_inputs() -> list:
    return [
        io.Float.Input(
            "negative_start", default=5.0, min=0.0, max=10000.0, step=1.0, round=0.0001,
            tooltip="When the negative prompt starts to act (the paper's critical step). Before it, the "
                    "unconditional branch uses what 'before_negative' says. In steps of the whole schedule "
                    "(step 0 = the first), a fraction of the steps (0-1), or a sigma, as 'timing_unit' says. "
                    "0 = from the first step, like the stock KSampler; at or past the last step = never. "
                    "Not used with timing_unit 'auto'."),
        io.Float.Input(
            "negative_end", default=NEVER, min=NEVER, max=10000.0, step=1.0, round=0.0001,
            tooltip="Optional: when the negative stops acting again (a guidance window), in the same unit; "
                    "from then on the unconditional branch goes back to 'before_negative'. -1 = never stops."),
        io.Combo.Input(
            "timing_unit", options=[*START_UNITS, AUTO], default="step",
            tooltip="The unit of negative_start and negative_end: a sampler step number, a fraction of the "
                    "steps (0.2 of 30 steps = step 6), or a sigma (the first step whose sigma is at or below it). "
                    "auto: the pack picks the start while sampling, once the image has begun to form what the "
                    "negative names (settings: the optional 'auto_start' input)."),
        io.Combo.Input(
            "before_negative", options=list(BEFORE_NEGATIVE), default="empty prompt",
            tooltip="What the unconditional branch uses before the negative starts: the empty prompt (the "
                    "paper's setting; connect 'clip'), your own 'early_conditioning', or no guidance at all "
                    "(the unconditional evaluation is skipped, which is faster)."),
    ]


def before_negative_inputs() -> list:
    return [
        io.Clip.Input(
            "clip", optional=True,
            tooltip="The CLIP of your checkpoint: used to encode the empty prompt for 'before_negative'."),
        io.Conditioning.Input(
            "early_conditioning", optional=True,
            tooltip="Used in the unconditional branch before the negative starts when before_negative is "
                    "'early conditioning'."),
    ]


def guidance_settings(cfg, negative_start, negative_end, timing_unit, before_negative, clip, early_conditioning,
                      schedule: GuidanceSchedule | None = None, model=None, negative=None,
                      nag: NAGSettings | None = None):
    """Check the shared inputs; returns (when the negative acts, the conditioning used outside it).

    With a guidance schedule whose cfg is not the sampler's own, the schedule's cfg values are
    checked once the steps are known (samplers/guidance_schedule.py) instead of `cfg`. With NAG
    (cfg 1) the steps outside the negative's window evaluate the positive alone: no conditioning.
    """
    when = NegativeTiming(negative_start, negative_end, timing_unit)
    if timing_unit == AUTO and negative_end != NEVER:
        raise ValueError(f"negative_end is {negative_end:g}, but with timing_unit 'auto' the negative stays on to "
                         f"the last step once it starts: set negative_end to {NEVER:g}, or pick the start yourself "
                         "in another unit.")
    if nag is not None:
        check_nag_inputs(before_negative, schedule)
    schedule = schedule or GuidanceSchedule()
    if schedule.cfg_curve == "constant":
        check_cfg(cfg, model, nag)
    if nag is not None:
        return when, None
    ramp = schedule.ramp_steps > 0
    return when, before_negative_conditioning(before_negative, clip, early_conditioning, when, ramp, negative)


def before_negative_conditioning(before_negative: str, clip, early_conditioning, timing: NegativeTiming,
                                 ramp: bool = False, negative=None):
    """The conditioning for the unconditional branch outside the negative's window (None: no guidance).

    A negative ramp blends from it, so it is needed even when the negative starts at step 0. The
    empty prompt keeps what the nodes after the negative's encoder added (its ControlNet, hooks,
    mask): see empty_prompt.empty_in_place_of.
    """
    negative_throughout = timing.start == 0 and timing.end == NEVER and timing.unit in ("step", "fraction of steps") \
        and not ramp
    if before_negative == "no guidance" or negative_throughout:
        return None
    if before_negative == "early conditioning":
        if early_conditioning is None:
            raise ValueError("before_negative is 'early conditioning' but nothing is connected to "
                             "'early_conditioning'. Connect a conditioning, or pick 'empty prompt'.")
        return early_conditioning
    if clip is None:
        raise ValueError("before_negative is 'empty prompt', which needs the text encoder: connect the CLIP "
                         "output of your checkpoint loader to 'clip'. Or pick 'no guidance'.")
    return empty_prompt(clip) if negative is None else empty_in_place_of(negative, empty_prompt(clip))


def check_nag_inputs(before_negative: str, schedule: GuidanceSchedule | None) -> None:
    if before_negative == "early conditioning":
        raise ValueError("before_negative is 'early conditioning', and 'nag' is connected: with NAG the steps "
                         "before negative_start evaluate the positive alone. Pick 'empty prompt' or 'no guidance' "
                         "(both mean that under NAG), or disconnect 'nag'.")
    if schedule is not None:
        raise ValueError("A guidance schedule shapes CFG's guidance, and 'nag' is connected (cfg 1, no CFG). "
                         "Disconnect the guidance schedule, and time the negative with negative_start and "
                         "negative_end.")
