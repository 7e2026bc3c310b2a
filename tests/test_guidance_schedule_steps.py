"""(iv) for the Guidance Schedule: every sampler gets each step's cfg, ramp and interval exactly.

The same instrumented model as the negative's switch (tests/instrumented.py): each evaluation's
step is the sampler's own loop counter, and the unconditional chunk is named by the tensor it
holds. A pre-cfg hook records the cfg ComfyUI's sampling_function was given for it. The
expected values below are written out by hand, not computed by the pack's rules.

dpm_fast and dpm_adaptive do not step on the schedule: their by-sigma fallback is tested with
the negative's switch (test_step_attribution.py) and the schedule reads the same clock.
"""

import comfy.samplers
import pytest
import torch
from delayed_negative.samplers.guidance_schedule import GuidanceSchedule
from delayed_negative.samplers.ksampler import delayed_negative_ksampler
from delayed_negative.samplers.negative_window import NegativeTiming
from instrumented import instrument, sampler_loop_step
from devtools.models.tiny_models import tiny_sd15

STEPS, START = 8, 3
SAMPLERS = [name for name in comfy.samplers.KSampler.SAMPLERS if name not in ("dpm_fast", "dpm_adaptive")]

# cfg 2.0, 2.5, ... one per step; ramp of two steps after START; guidance on steps 1..6 only.
CFG_LIST = (2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5)
SCHEDULE = GuidanceSchedule(cfg_curve="list", cfg_list=CFG_LIST, ramp_steps=2,
                            guidance=NegativeTiming(1, 7, "step"))
EXPECTED_UNCOND = {0: None, 1: "empty", 2: "empty", 3: "ramp 1/3", 4: "ramp 2/3", 5: "negative", 6: "negative",
                   7: None}


@pytest.fixture(scope="module")
def model():
    return tiny_sd15()


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    named = {name: torch.randn(1, 77, 768, generator=generator) for name in ("positive", "negative", "empty")}
    # What ComfyUI's ConditioningAverage makes of them: to * weight + from * (1 - weight).
    for share, name in ((1 / 3, "ramp 1/3"), (2 / 3, "ramp 2/3")):
        named[name] = torch.mul(named["negative"], share) + torch.mul(named["empty"], 1.0 - share)
    return named


def run(model, prompts, sampler):
    evaluations, cfgs = [], []

    def record_cfg(args):
        cfgs.append((sampler_loop_step(), args["cond_scale"]))
        return args["conds_out"]

    patched = instrument(model, prompts, evaluations)
    patched.set_model_sampler_pre_cfg_function(record_cfg)
    condition = {name: [[tensor, {}]] for name, tensor in prompts.items()}
    delayed_negative_ksampler(patched, 7, STEPS, 5.0, sampler, "karras", condition["positive"], condition["negative"],
                              {"samples": torch.zeros(1, 4, 8, 8)}, NegativeTiming(START), condition["empty"],
                              guidance=SCHEDULE)
    return evaluations, cfgs


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_gets_each_steps_cfg_ramp_and_interval(model, prompts, sampler):
    evaluations, cfgs = run(model, prompts, sampler)
    assert evaluations and all(e.sampler_step is not None for e in evaluations)
    wrong = [(e.sampler_step, e.uncond) for e in evaluations
             if e.uncond != EXPECTED_UNCOND[e.sampler_step]
             and not (EXPECTED_UNCOND[e.sampler_step] is None and e.uncond == "positive")]  # CFG++: see the guider
    assert not wrong, f"unconditional conditioning on the wrong steps: {wrong}"
    wrong_cfg = [(step, cfg) for step, cfg in cfgs
                 if cfg != (CFG_LIST[step] if EXPECTED_UNCOND[step] is not None else 1.0)]
    assert not wrong_cfg, f"cfg on the wrong steps: {wrong_cfg}"
    assert {step for step, _ in cfgs} == set(range(STEPS)) or sampler_reaches_fewer_steps(cfgs)


def sampler_reaches_fewer_steps(cfgs) -> bool:
    # A sampler whose last step is a plain update without a model call (e.g. some multistep solvers)
    # still visits every step before it.
    steps = sorted({step for step, _ in cfgs})
    return steps == list(range(len(steps))) and len(steps) >= STEPS - 1
