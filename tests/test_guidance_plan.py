"""The Guidance Schedule resolved per step, written out by hand: what the sampling tests
(test_guidance_schedule.py against stock passes, test_guidance_schedule_steps.py per sampler)
rely on, here at every step and at the edges of each setting. No model: plain schedules."""

import pytest
import torch
from delayed_negative.samplers.guidance_schedule import (
    GuidanceSchedule,
    parse_cfg_list,
    ramp_shares,
    resolve_plan,
)
from delayed_negative.samplers.negative_window import NegativeTiming

SIGMAS = torch.linspace(10.0, 0.0, 11)  # 10 steps


def cfg_per_step(schedule: GuidanceSchedule, sampler_cfg: float = 5.0) -> list[float]:
    return [round(value, 4) for value in resolve_plan(schedule, sampler_cfg, SIGMAS).cfg]


def test_constant_keeps_the_samplers_cfg_on_every_step():
    assert cfg_per_step(GuidanceSchedule()) == [5.0] * 10


def test_a_list_gives_one_cfg_per_step_and_its_last_holds_to_the_end():
    assert cfg_per_step(GuidanceSchedule("list", (8.0, 7.0, 6.5))) == [8.0, 7.0] + [6.5] * 8


def test_a_linear_curve_runs_over_its_steps_and_is_flat_outside():
    linear = GuidanceSchedule("linear", cfg_first=8.0, cfg_last=4.0, curve_first_step=2, curve_last_step=6)
    assert cfg_per_step(linear) == [8.0, 8.0, 8.0, 7.0, 6.0, 5.0, 4.0, 4.0, 4.0, 4.0]


def test_a_cosine_curve_eases_in_and_out():
    cosine = GuidanceSchedule("cosine", cfg_first=8.0, cfg_last=4.0, curve_first_step=2, curve_last_step=6)
    # 8 - 4 * (1 - cos(pi * p)) / 2 at p = 0, 1/4, 1/2, 3/4, 1
    assert cfg_per_step(cosine) == [8.0, 8.0, 8.0, 7.4142, 6.0, 4.5858, 4.0, 4.0, 4.0, 4.0]


def test_a_curves_last_step_minus_1_is_the_last_step_and_steps_past_the_end_are_cut():
    to_the_end = GuidanceSchedule("linear", cfg_first=9.0, cfg_last=0.0, curve_first_step=1, curve_last_step=-1)
    assert cfg_per_step(to_the_end) == [9.0, 9.0, 7.875, 6.75, 5.625, 4.5, 3.375, 2.25, 1.125, 0.0]
    past = GuidanceSchedule("linear", cfg_first=9.0, cfg_last=0.0, curve_first_step=5, curve_last_step=40)
    assert cfg_per_step(past) == [9.0] * 6 + [6.75, 4.5, 2.25, 0.0]
    late = GuidanceSchedule("linear", cfg_first=9.0, cfg_last=3.0, curve_first_step=30, curve_last_step=-1)
    assert cfg_per_step(late) == [9.0] * 9 + [3.0]  # cut to the last step: a curve of one step


def test_a_curve_of_one_step_switches_there_from_cfg_first_to_cfg_last():
    for step in (0, 4):
        one = GuidanceSchedule("cosine", cfg_first=9.0, cfg_last=3.0, curve_first_step=step, curve_last_step=step)
        assert cfg_per_step(one) == [9.0] * step + [3.0] * (10 - step)


def test_a_curve_that_ends_before_it_starts_says_so():
    with pytest.raises(ValueError, match=r"curve_last_step \(2\) comes before curve_first_step \(4\)"):
        resolve_plan(GuidanceSchedule("linear", curve_first_step=4, curve_last_step=2), 5.0, SIGMAS)


def test_guidance_only_on_the_interval_in_each_unit():
    for timing in (NegativeTiming(2, 7, "step"), NegativeTiming(0.15, 0.65, "fraction of steps"),
                   NegativeTiming(8.5, 3.5, "sigma")):
        plan = resolve_plan(GuidanceSchedule(guidance=timing), 5.0, SIGMAS)
        assert plan.guided == (False, False, True, True, True, True, True, False, False, False), timing


def test_a_plan_read_past_its_end_holds_its_last_step():
    curve = GuidanceSchedule("linear", cfg_first=9.0, cfg_last=0.0, curve_first_step=0, curve_last_step=-1,
                             ramp_steps=2, guidance=NegativeTiming(0, 9, "step"))
    plan = resolve_plan(curve, 5.0, SIGMAS)
    assert (plan.cfg_at(8), plan.cfg_at(9), plan.cfg_at(12)) == (1.0, 0.0, 0.0)
    assert (plan.guided_at(8), plan.guided_at(9), plan.guided_at(12), plan.ramp_steps) == (True, False, False, 2)


def test_an_empty_interval_names_the_guidance_inputs():
    with pytest.raises(ValueError, match=r"guidance_end \(2\) must come after guidance_start \(5\)"):
        resolve_plan(GuidanceSchedule(guidance=NegativeTiming(5, 2, "step")), 5.0, SIGMAS)


def test_no_guided_step_above_cfg_1_is_refused_and_the_message_shows_the_first_eight():
    with pytest.raises(ValueError, match=r"cfg is 1 or below on every guided step \(1, 1, 0.5, 0.5, 0.5, 0.5, "
                                         r"0.5, 0.5, ...\), so the negative prompt would do nothing"):
        resolve_plan(GuidanceSchedule("list", (1.0, 1.0, 0.5)), 5.0, SIGMAS)
    # cfg above 1 only outside the interval counts for nothing either
    outside = GuidanceSchedule("list", (8.0, 1.0), guidance=NegativeTiming(1, -1, "step"))
    with pytest.raises(ValueError, match="cfg is 1 or below on every guided step"):
        resolve_plan(outside, 5.0, SIGMAS)
    assert resolve_plan(GuidanceSchedule("list", (1.0, 1.5)), 5.0, SIGMAS).cfg[1] == 1.5  # one step above 1 is enough
    with pytest.raises(ValueError, match=r"guided step \(1, 1, 1, 1, 1, 1, 1, 1\), so"):  # all eight shown: no "..."
        resolve_plan(GuidanceSchedule("list", (1.0,)), 5.0, torch.linspace(10.0, 0.0, 9))
    with pytest.raises(ValueError, match=r"guided step \(1, 1, 1, 1, 1, 1, 1, 1, ...\), so"):  # nine: eight shown
        resolve_plan(GuidanceSchedule("list", (1.0,)), 5.0, torch.linspace(10.0, 0.0, 10))
    assert resolve_plan(GuidanceSchedule(), 1.0, SIGMAS).cfg == (1.0,) * 10  # constant: the sampler's own cfg, as is


def test_ramp_shares_climb_evenly_below_1():
    assert ramp_shares(0) == [] and ramp_shares(3) == [0.25, 0.5, 0.75]


@pytest.mark.parametrize("text, values", [("8, 8, 7.5; 6", (8.0, 8.0, 7.5, 6.0)), (" 0 ,", (0.0,))])
def test_cfg_lists_are_read_with_commas_or_semicolons(text, values):
    assert parse_cfg_list(text) == values


@pytest.mark.parametrize("text, message", [("8, eight", "'8, eight' is not a list of numbers"),
                                           (" ; ", "cfg_list is empty"), ("8, inf", "negative or infinite"),
                                           ("8, -0.5", "negative or infinite")])
def test_bad_cfg_lists_say_what_to_change(text, message):
    with pytest.raises(ValueError, match=message):
        parse_cfg_list(text)
