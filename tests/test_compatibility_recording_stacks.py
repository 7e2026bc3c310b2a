"""The recorder and the automatic start on every stack of the compatibility matrix (issue 19).

For each stack of tests/model_stacks.py, with Record Attention Maps placed before the stack's
model node and after it (a stack that only changes the conditioning has one place), sampled by
KSampler (Delayed Negative) switching at step START:
- the latent is bit-identical to the same stack without the recorder;
- the positive prompt's maps equal the explicit softmax of the queries and keys the UNet really
  computed, read by forward hooks on every cross-attention's to_q and to_k (the rows of the
  positive prompt found by comparing each row's text with it), averaged over the calls of each
  step (the sampler's own loop variable says which step: tests/instrumented.py). A second
  evaluation in a step (PAG's perturbed positive pass) counts in both; a step the UNet did not
  run (a cache skipped it) is "not evaluated" in both.
- the automatic start picks a whole step: its latent equals the fixed start at the step it picked.
"""

import pytest
import torch

import model_stacks
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from instrumented import sampler_loop_step
from attention_hooks import at_latent_size, word_probability
from test_compatibility_sampling import (CFG, SEED, START, STEPS, assets, at_start, base, before_negative,  # noqa: F401
                                         built, cells, delayed, prompts, sd15)

pytestmark = pytest.mark.model
WORDS = [("first", [1, 2]), ("later", [6])]
COLUMNS = {"positive": WORDS, "negative": [("blur", [1])], "empty": [("<end>", [1])]}
CONDITIONING_ONLY = {"ControlNetApplyAdvanced", "hooks on the positive (CreateHookLoraModelOnly, ConditioningSetProperties)"}


def places(stack) -> list[str]:
    return ["after the stack"] if stack.name in CONDITIONING_ONLY else ["before the stack", "after the stack"]


def matrix():
    return [pytest.param(cell.values[0], place, id=f"{cell.id}-Record {place}", marks=cell.marks)
            for cell in cells() for place in places(cell.values[0])]


def recorded_setup(stack, place, prepared, assets, recording):
    if place == "before the stack":
        return stack.patch(model_stacks.replace(prepared, model=record_attention(prepared.model, recording)), assets)
    stacked = stack.patch(prepared, assets)
    return model_stacks.replace(stacked, model=record_attention(stacked.model, recording))


def hook_positive_attention(model, positive_text):
    """Forward hooks on every cross-attention of the UNet: for each call, (sampler step, per-word maps
    of the positive prompt's rows at the latent's size)."""
    seen, handles = [], []
    for module in model.get_model_object("diffusion_model").modules():
        if not hasattr(module, "attn2"):
            continue
        attention, pending = module.attn2, {}
        handles.append(attention.to_q.register_forward_hook(
            lambda _m, _i, out, pending=pending: pending.__setitem__("q", out.detach().clone())))
        handles.append(attention.to_k.register_forward_hook(
            lambda _m, inputs, out, pending=pending, heads=attention.heads: seen.append(
                (sampler_loop_step(), pending.pop("q"), out.detach().clone(), heads, inputs[0].detach().clone()))))
    return seen, handles, positive_text


def reference_positive_maps(seen, positive_text, latent_size):
    """{step: [words, 1, height, width]}: the mean over the step's calls and positive rows."""
    sums, counts = {}, {}
    for step, q, k, heads, context in seen:
        for row in range(context.shape[0]):
            if context.shape[1:] != positive_text.shape[1:] or not torch.equal(context[row], positive_text[0].to(context)):
                continue
            words = torch.stack([at_latent_size(word_probability(q[row:row + 1], k[row:row + 1], heads, columns),
                                                *latent_size) for _word, columns in WORDS])
            sums[step] = sums.get(step, 0) + words
            counts[step] = counts.get(step, 0) + 1
    return {step: sums[step] / counts[step] for step in sums}


@pytest.mark.parametrize("stack, place", matrix())
def test_recorder_keeps_the_latent_and_its_maps_are_the_explicit_softmax(built, at_start, assets, stack, place):
    prepared, _stacked = built(stack)
    recording = AttentionRecording(COLUMNS, prepared.empty[0][0])
    setup = recorded_setup(stack, place, prepared, assets, recording)
    seen, handles, positive_text = hook_positive_attention(setup.model, setup.positive[0][0])
    try:
        latent = delayed(setup, START)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.equal(latent, at_start(stack))
    maps = recording.snapshot()
    expected = reference_positive_maps(seen, positive_text, maps.maps.shape[-2:])
    positive = [i for i, track in enumerate(maps.tracks) if track.prompt == "positive"]
    assert expected, "no positive attention seen: the cell proves nothing"
    for step in range(STEPS):
        if step in expected:
            torch.testing.assert_close(maps.maps[step, positive].double(), expected[step], rtol=1e-4, atol=1e-6)
        else:
            assert maps.maps[step, positive].isnan().all()
    ran = {step for step, *_ in seen}
    assert maps.steps_not_evaluated() == [step for step in range(STEPS) if step not in ran]


@pytest.mark.parametrize("stack", cells())
def test_the_automatic_start_picks_a_whole_step_on_the_stack(built, stack):
    _, setup = built(stack)
    before, early = before_negative(setup)

    def run(start, unit):
        return DelayedNegativeKSampler.execute(
            setup.model, SEED, STEPS, CFG, "euler", "normal", setup.positive, setup.negative, setup.latent, 1.0,
            start, -1.0, unit, before, setup.clip, early).result

    auto, picked = run(0, "auto")
    fixed, reported = run(picked, "step")
    assert reported == picked
    assert torch.equal(auto["samples"], fixed["samples"])
