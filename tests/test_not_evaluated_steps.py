"""Steps a cache skips show as "not evaluated", and a model whose attention never reaches the
recorder gets a message naming what else is on it: never a silent hole or all-NaN maps.

The caches are a pack-style DIFFUSION_MODEL wrapper that hands back its last prediction at chosen
steps (the way EasyCache skips, through the same documented wrapper), and ComfyUI's own EasyCache
where the host has it (0.33). Which steps the model really ran is read independently, from a
forward hook on the UNet's first block.
"""

import pytest
import torch

import stock
from comfy.patcher_extension import WrappersMP

from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.attention_maps import AttentionChart, AttentionGrid
from delayed_negative.render.evaluation_marks import NOT_EVALUATED_FILL, NOT_EVALUATED_SHADE
from delayed_negative.render.grid import GridLayout
from delayed_negative.render.viewer_payload import viewer_payload
from test_attention_recording import COLUMNS, STEPS, embeddings, run, single_resolution_sd15

try:
    from comfy_extras import nodes_easycache
except ImportError:  # ComfyUI 0.3.75 has no EasyCache
    nodes_easycache = None

pytestmark = pytest.mark.model  # each test samples a model built in the test
SKIPPED = (2, 3)


def step_cache(model, skipped_steps, key="a_step_cache"):
    """A clone whose DIFFUSION_MODEL wrapper returns its last prediction at `skipped_steps`."""
    patched, last = model.clone(), {}

    def wrapper(executor, x, *args, **kwargs):
        options = kwargs.get("transformer_options") if "transformer_options" in kwargs else args[4]
        sigmas = [float(s) for s in options["sample_sigmas"]]
        step = sigmas.index(float(options["sigmas"][0]))
        if step in skipped_steps and "out" in last:
            return last["out"]
        last["out"] = executor(x, *args, **kwargs)
        return last["out"]

    patched.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, key, wrapper)
    return patched


def steps_the_unet_ran(model, run_it):
    """The sigmas at which the UNet's first input block ran, read by a torch forward hook."""
    ran = []
    first_block = model.get_model_object("diffusion_model").input_blocks[0][0]
    handle = first_block.register_forward_hook(lambda *_: ran.append(True))
    try:
        return run_it(), ran
    finally:
        handle.remove()


def test_steps_a_cache_skips_are_marked_not_evaluated_and_hold_no_stale_map():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    latent, ran = steps_the_unet_ran(model, lambda: run(record_attention(step_cache(model, SKIPPED), recording),
                                                        prompts))
    assert len(ran) == STEPS - len(SKIPPED)  # the cache really skipped the model
    assert torch.equal(latent, run(step_cache(model, SKIPPED), prompts))  # and the recorder changed nothing
    maps = recording.snapshot()
    assert maps.steps_not_evaluated() == list(SKIPPED)
    assert maps.maps[list(SKIPPED)].isnan().all()
    evaluated = [step for step in range(STEPS) if step not in SKIPPED]
    positive = [i for i, track in enumerate(maps.tracks) if track.prompt == "positive"]
    assert torch.isfinite(maps.maps[evaluated][:, positive]).all()


def skipped_maps():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    run(record_attention(step_cache(model, SKIPPED), recording), prompts)
    return recording.snapshot()


def test_grid_chart_and_viewer_say_not_evaluated_at_the_skipped_steps():
    maps = skipped_maps()
    grid = AttentionGrid.execute(maps, "", "all", 0, "viridis", "per map", 32).result[0][0]
    layout = GridLayout(STEPS, len(maps.tracks), 32)
    fill = torch.tensor(NOT_EVALUATED_FILL, dtype=torch.float32) / 255
    for step in range(STEPS):
        x, y = layout.cell_origin(step, 0)
        corner = grid[y + 4, x + 12]  # off both diagonals of the cell
        assert torch.allclose(corner, fill, atol=1 / 255) == (step in SKIPPED), step

    chart = AttentionChart.execute(maps, "", 0, -1).result[0][0]
    shade = torch.tensor(NOT_EVALUATED_SHADE, dtype=torch.float32) / 255
    shaded = (chart - shade).abs().amax(-1).lt(1 / 255).any(dim=0).nonzero().flatten()
    assert len(shaded) > 10
    width = chart.shape[1]
    assert width * 0.1 < shaded.min() and shaded.max() < width * 0.7  # around steps 2-3 of 0-5, not the edges

    payload = viewer_payload(maps, [])
    assert payload["not_evaluated"] == list(SKIPPED)


def test_a_model_whose_attention_never_reaches_the_recorder_is_named_in_a_message():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    everything = set(range(STEPS))
    run(record_attention(step_cache_from_the_start(model, everything), recording), prompts)
    with pytest.raises(ValueError, match="No attention reached Record Attention Maps.*a_whole_model_cache"):
        recording.snapshot()


def step_cache_from_the_start(model, skipped_steps):
    """A pack that computes every prediction without the model's attention (here: zeros)."""
    patched = model.clone()
    patched.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, "a_whole_model_cache",
                                 lambda executor, x, *args, **kwargs: torch.zeros_like(x))
    return patched


def stock_run(model, prompts, steps):
    """The stock KSampler (the delayed negative changes the unconditional cond EasyCache keys on)."""
    conds = {name: [[tensor, {}]] for name, tensor in prompts.items()}
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    return stock.ksampler(model, 11, steps, 5.0, "euler", "karras", conds["positive"], conds["negative"],
                          latent)["samples"]


def easycache(model):
    return nodes_easycache.EasyCacheNode.execute(model, 0.5, 0.0, 1.0, False).result[0]


@pytest.mark.skipif(nodes_easycache is None, reason="EasyCache is not in this ComfyUI")
def test_comfyui_easycache_skipped_steps_are_the_not_evaluated_ones():
    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    steps_ran = []
    first_block = model.get_model_object("diffusion_model").input_blocks[0][0]
    handle = first_block.register_forward_hook(lambda *_: steps_ran.append(recording.step))
    try:
        latent = stock_run(record_attention(easycache(model), recording), prompts, 12)
    finally:
        handle.remove()
    skipped = sorted(set(range(12)) - set(steps_ran))
    assert skipped, "EasyCache skipped nothing: the cell proves nothing"
    assert recording.snapshot().steps_not_evaluated() == skipped
    assert torch.equal(latent, stock_run(easycache(model), prompts, 12))


def lazycache(model):
    return nodes_easycache.LazyCacheNode.execute(model, 0.5, 0.0, 1.0, False).result[0]


@pytest.mark.skipif(nodes_easycache is None, reason="LazyCache is not in this ComfyUI")
@pytest.mark.parametrize("order", ["LazyCache before Record", "LazyCache after Record"])
def test_lazycache_skipped_steps_are_not_evaluated_and_the_clock_keeps_count(order, caplog):
    """LazyCache answers whole evaluations from its PREDICT_NOISE wrapper; placed before Record, its
    wrapper would run outside the recorder's and hide them from the step clock, which would then
    lose count (and tell the user, wrongly, that euler adapts its steps)."""
    import logging

    model, prompts = single_resolution_sd15(), embeddings()
    recording = AttentionRecording(COLUMNS, prompts["empty"])
    steps_ran = []
    first_block = model.get_model_object("diffusion_model").input_blocks[0][0]
    handle = first_block.register_forward_hook(lambda *_: steps_ran.append(recording.step))
    stacked = record_attention(lazycache(model), recording) if order == "LazyCache before Record" \
        else lazycache(record_attention(model, recording))
    try:
        with caplog.at_level(logging.WARNING, logger="delayed_negative"):
            latent = stock_run(stacked, prompts, 12)
    finally:
        handle.remove()
    skipped = sorted(set(range(12)) - set(steps_ran))
    assert skipped, "LazyCache skipped nothing: the cell proves nothing"
    assert recording.snapshot().steps_not_evaluated() == skipped
    assert not [record for record in caplog.records if record.name == "delayed_negative"]
    assert torch.equal(latent, stock_run(lazycache(model), prompts, 12))
