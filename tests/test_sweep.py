"""KSampler Sweep (Delayed Negative): each start equals a separate KSampler (Delayed Negative) run
bit for bit, and the steps the runs share are evaluated once (counted on the model itself).

Samplers are compared on the small in-memory SD1.5-architecture model with random conditioning
tensors (fast enough for five samplers); one case runs the generated checkpoint through the
stock loader and CLIP Text Encode. Both decode with the checkpoint's VAE.
"""

import pytest
import stock
import torch
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.nodes.sweep import DelayedNegativeSweep
from delayed_negative.samplers.ksampler import full_schedule
from delayed_negative.samplers.shared_prefix import SharedPrefix
from delayed_negative.samplers.sweep import auto_label, parse_starts
from instrumented import instrument
from devtools.models.tiny_models import tiny_sd15

SEED, STEPS, CFG = 42, 8, 6.5
STARTS = "0, 2, 5, never"


@pytest.fixture(scope="module")
def sd15(checkpoint):
    model, clip, vae = checkpoint
    return {"model": model, "clip": clip, "vae": vae, "positive": stock.encode(clip, "portrait photo of a man"),
            "negative": stock.encode(clip, "mustache"), "empty": stock.encode(clip, ""),
            "latent": stock.empty_latent(64, 48, batch_size=1)}


@pytest.fixture(scope="module")
def tiny(checkpoint):
    generator = torch.Generator().manual_seed(0)
    prompts = {name: [[torch.randn(1, 77, 768, generator=generator), {}]] for name in ("positive", "negative", "empty")}
    return {"model": tiny_sd15(), "clip": None, "vae": checkpoint[2], "latent": {"samples": torch.zeros(2, 4, 6, 8)},
            **prompts}


def run_sweep(setup, sampler, starts=STARTS, model=None, scheduler="karras", unit="step", denoise=1.0):
    before, early = ("empty prompt", None) if setup["clip"] else ("early conditioning", setup["empty"])
    return DelayedNegativeSweep.execute(
        model or setup["model"], SEED, STEPS, CFG, sampler, scheduler, setup["positive"], setup["negative"],
        setup["latent"], denoise, starts, unit, before, setup["vae"], 0, setup["clip"], early).result


def separate(setup, sampler, start, model=None, scheduler="karras", denoise=1.0):
    before, early = ("empty prompt", None) if setup["clip"] else ("early conditioning", setup["empty"])
    return DelayedNegativeKSampler.execute(
        model or setup["model"], SEED, STEPS, CFG, sampler, scheduler, setup["positive"], setup["negative"],
        setup["latent"], denoise, start, -1.0, "step", before, setup["clip"], early).result[0]["samples"]


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m_sde", "euler_ancestral", "uni_pc"])
def test_each_start_is_a_separate_run_bit_for_bit(tiny, sampler):
    latents, images, grid = run_sweep(tiny, sampler)
    batch = tiny["latent"]["samples"].shape[0]
    assert latents["samples"].shape[0] == 4 * batch and images.shape[0] == 4 * batch
    for index, start in enumerate([0, 2, 5, STEPS]):
        expected = separate(tiny, sampler, start)
        assert torch.equal(latents["samples"][index * batch:(index + 1) * batch], expected), f"start {start}"
    assert grid.shape[0] == 1 and grid.shape[2] > 8 * images.shape[2]  # eight captioned pictures in a row


def test_on_the_checkpoint_each_start_is_a_separate_run(sd15):
    latents, images, _ = run_sweep(sd15, "dpmpp_2m", "3, never")
    assert torch.equal(latents["samples"][:1], separate(sd15, "dpmpp_2m", 3))
    assert torch.equal(latents["samples"][1:], separate(sd15, "dpmpp_2m", STEPS))
    assert images.shape == (2, 48, 64, 3)


@pytest.mark.parametrize("sampler, per_step", [("euler", 1), ("heun", 2)])
def test_the_shared_steps_are_evaluated_once(tiny, sampler, per_step):
    embeddings = {name: tiny[name][0][0] for name in ("positive", "negative", "empty")}
    swept, alone = [], []
    run_sweep(tiny, sampler, model=instrument(tiny["model"], embeddings, swept))
    for start in (0, 2, 5, STEPS):
        separate(tiny, sampler, start, model=instrument(tiny["model"], embeddings, alone))
    # heun's last step (to sigma 0) is one euler evaluation.
    per_run = per_step * STEPS - (per_step - 1)
    assert len(alone) == 4 * per_run
    # Latest start first: never, then 5 (steps 0-4 shared), 2 (0-1 shared), 0 (nothing shared).
    assert len(swept) == 4 * per_run - per_step * (5 + 2)


def test_starts_in_any_order_and_unit_come_back_in_the_order_given(tiny):
    latents, _, _ = run_sweep(tiny, "euler", "0.75; never, 0.25", unit="fraction of steps")
    batch = tiny["latent"]["samples"].shape[0]
    for index, start in enumerate([6, STEPS, 2]):  # fractions of 8 steps, rounded up
        assert torch.equal(latents["samples"][index * batch:(index + 1) * batch], separate(tiny, "euler", start))


def test_starts_in_sigmas_are_read_on_the_runs_own_schedule(tiny):
    # denoise 0.6 on "exponential" with dpm_2 (which drops the penultimate sigma): starts between two steps
    sigmas = full_schedule(tiny["model"], STEPS, "dpm_2", "exponential", 0.6)
    between = [float(sigmas[step] + sigmas[step + 1]) / 2 for step in (1, 4)]
    embeddings = {name: tiny[name][0][0] for name in ("positive", "negative", "empty")}
    swept, alone = [], []
    latents, _, _ = run_sweep(tiny, "dpm_2", ", ".join(f"{sigma:.6f}" for sigma in between), scheduler="exponential",
                              unit="sigma", denoise=0.6, model=instrument(tiny["model"], embeddings, swept))
    batch = tiny["latent"]["samples"].shape[0]
    for index, start in enumerate([2, 5]):  # the first step at or below each sigma
        expected = separate(tiny, "dpm_2", start, scheduler="exponential", denoise=0.6,
                            model=instrument(tiny["model"], embeddings, alone))
        assert torch.equal(latents["samples"][index * batch:(index + 1) * batch], expected), start
    # The run from step 2 takes steps 0 and 1 from the run from step 5.
    assert len(swept) == len(alone) - sum(1 for evaluation in alone[len(alone) // 2:] if evaluation.sampler_step < 2)


def test_a_prediction_is_reused_only_before_the_start_for_the_very_same_input_and_sigma():
    shared, made = SharedPrefix(), []

    def predict(step, x, sigma, value):
        return float(shared.predict(step, torch.tensor([x]), torch.tensor([sigma]),
                                    lambda: (made.append(value), torch.tensor([value]))[1]))

    shared.begin_run(reuse_before=0)
    assert [predict(step, step, 9 - step, step) for step in range(4)] == [0, 1, 2, 3]
    shared.begin_run(reuse_before=3)  # the next run: steps 0-2 may come from the first
    assert predict(0, 0, 9, 10) == 0  # the same input at the same sigma: reused
    assert predict(1, 1.5, 8, 11) == 11  # another input (e.g. other noise): evaluated
    assert predict(2, 2, 6.5, 12) == 12  # another sigma: evaluated
    assert predict(3, 3, 6, 13) == 13  # its own start: evaluated
    assert made == [0, 1, 2, 3, 11, 12, 13]
    shared.begin_run(reuse_before=4)  # the run before is now the second one
    assert [predict(step, x, sigma, 20 + step) for step, x, sigma in ((0, 0, 9), (1, 1.5, 8), (2, 2, 7))] == [0, 11, 22]


def test_starts_are_read_as_the_user_wrote_them():
    starts = parse_starts("0; 3 ,, never, None, OFF, 2.5, auto")
    assert [start.label for start in starts] == ["start 0", "start 3", "never", "never", "never", "start 2.5",
                                                 "start auto"]
    assert [start.automatic for start in starts] == [False] * 6 + [True]
    assert (auto_label(None), auto_label(4)) == ("auto: never", "auto: start 4")


@pytest.mark.parametrize("starts, message", [
    ("0, 3, soon", "starts: 'soon' is neither a number, 'never' nor 'auto'. Write the starts like"),
    (" , ", "starts is empty: list the negative starts to compare"),
    ("0, -2", "starts: -2 is negative; a start is 0 or more"),
    ("auto, 2, AUTO", "starts: 'auto' is listed twice"),
    ("0, 9", "starts: 9 is past the last of the 8 steps. Write 'never'"),
])
def test_bad_starts_say_what_to_change(tiny, starts, message):
    with pytest.raises(ValueError, match=message):
        run_sweep(tiny, "euler", starts)


def test_a_sigma_outside_the_schedule_is_named(tiny):
    with pytest.raises(ValueError, match="sigma"):
        DelayedNegativeSweep.execute(
            tiny["model"], SEED, STEPS, CFG, "euler", "normal", tiny["positive"], tiny["negative"], tiny["latent"],
            1.0, "0, 99", "sigma", "early conditioning", tiny["vae"], 0, None, tiny["empty"])
