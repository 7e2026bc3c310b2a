"""The Attention Viewer's data: what the node sends its widget decodes back to the recorded maps.

From maps with known values and from a real recording (the generated checkpoint, KSampler
(Delayed Negative) with the negative from step 2): the bytes decode to the maps within half a
quantisation step, and the words, branches, steps, negative start, strengths and image files are
those of the run. The widget itself is tested in a browser (test_browser_viewer.py).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import stock
import torch
from delayed_negative.attention.maps import AttentionMaps, Track
from delayed_negative.nodes.attention_maps import CollectAttentionMaps, RecordAttentionMaps
from delayed_negative.nodes.attention_viewer import UI_KEY, AttentionViewer
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.render import apply_colormap
from delayed_negative.render.viewer_payload import (
    COLORMAP_ENTRIES,
    MAX_MAP_SIDE,
    colormap_bytes,
    decode_maps,
    negative_start_step,
    shrink,
    viewer_payload,
)

import nodes

NAN = float("nan")
TRACKS = (Track("positive", "positive", "man"), Track("positive", "positive", "glasses"),
          Track("unconditional", "negative", "glasses"), Track("unconditional", "empty", "<end>"))
STEPS, BATCH, HEIGHT, WIDTH = 6, 2, 8, 5
NEGATIVE_FROM = 3
IMAGES = [{"filename": "a.png", "subfolder": "", "type": "temp"}]


def scales(payload) -> torch.Tensor:
    """Each map's quantisation step, 0 for an absent map."""
    return torch.tensor(np.array(payload["scales"], dtype=np.float64)).nan_to_num(0.0)


def random_maps(height=HEIGHT, width=WIDTH, negative_from=NEGATIVE_FROM, seed=0) -> AttentionMaps:
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(STEPS, len(TRACKS), BATCH, height, width, generator=generator) * 0.3
    maps[:negative_from, 2] = NAN  # the negative before its start
    maps[negative_from:, 3] = NAN  # the empty prompt after it
    cfg = torch.full((STEPS,), 5.0)
    return AttentionMaps(TRACKS, maps, tuple(float(10 - s) for s in range(STEPS)), cfg)


def test_the_payload_decodes_to_the_maps_within_half_a_quantisation_step():
    maps = random_maps()
    payload = viewer_payload(maps, IMAGES)
    decoded = decode_maps(payload)
    assert decoded.shape == maps.maps.shape
    assert torch.equal(decoded.isnan(), maps.maps.isnan())
    scale = scales(payload)
    error = (decoded - maps.maps).abs().nan_to_num(0.0).double()
    assert (error <= scale[..., None, None] / 2 + 1e-7).all()
    assert error.max() > 0  # really quantised: bytes, not floats
    # each present map's largest value is exactly its scale × 255
    top = maps.maps.flatten(-2).amax(-1)
    present = ~top.isnan()
    assert torch.allclose((scale * 255.0).float()[present], top[present])


def test_the_payload_names_words_branches_steps_the_negative_start_and_strengths():
    maps = random_maps()
    payload = json.loads(json.dumps(viewer_payload(maps, IMAGES), allow_nan=False))  # valid JSON, no NaN
    assert payload["steps"] == STEPS and payload["batch"] == BATCH
    assert (payload["height"], payload["width"]) == (HEIGHT, WIDTH)
    assert [(t["word"], t["branch"], t["prompt"]) for t in payload["tracks"]] == \
        [(t.word, t.branch, t.prompt) for t in TRACKS]
    assert payload["tracks"][3]["label"] == "<end> (empty prompt)"
    assert payload["negative_start"] == NEGATIVE_FROM
    assert payload["sigmas"] == list(maps.sigmas) and payload["cfg"] == [5.0] * STEPS
    strength = torch.tensor([[[NAN if v is None else v for v in batch] for batch in step]
                             for step in payload["strength"]])
    assert torch.allclose(strength, maps.strength(), equal_nan=True)  # from the full maps, not the bytes
    assert payload["strength"][0][2] == [None, None]
    assert payload["images"] == IMAGES


def test_negative_start_from_step_0_never_or_not_recorded():
    assert negative_start_step(random_maps(negative_from=0)) == 0
    assert negative_start_step(random_maps(negative_from=STEPS)) is None
    positive_only = AttentionMaps(TRACKS[:2], random_maps().maps[:, :2], tuple(range(STEPS)))
    assert negative_start_step(positive_only) is None
    assert viewer_payload(positive_only, IMAGES)["negative_start"] is None


def test_large_maps_are_averaged_down_to_keep_the_payload_small():
    maps = random_maps(height=128, width=96)
    payload = viewer_payload(maps, IMAGES)
    assert (payload["height"], payload["width"]) == (MAX_MAP_SIDE, 48)
    assert (payload["latent_height"], payload["latent_width"]) == (128, 96)
    pooled = torch.nn.functional.avg_pool2d(maps.maps.reshape(-1, 1, 128, 96), 2).reshape(decode_maps(payload).shape)
    scale = scales(payload)[..., None, None]
    assert ((decode_maps(payload) - pooled).abs().nan_to_num(0.0) <= scale / 2 + 1e-7).all()
    assert len(payload["maps"]) * 3 / 4 == STEPS * len(TRACKS) * BATCH * MAX_MAP_SIDE * 48


def test_a_run_with_many_maps_is_averaged_down_further_to_stay_within_the_byte_budget():
    maps = random_maps(height=64, width=64)
    maps_count = STEPS * len(TRACKS) * BATCH
    payload = viewer_payload(maps, IMAGES, max_map_bytes=maps_count * 16 * 16)
    assert (payload["height"], payload["width"]) == (16, 16)
    assert len(payload["maps"]) * 3 / 4 <= maps_count * 16 * 16
    assert viewer_payload(maps, IMAGES)["height"] == 64  # within the default budget: untouched


def test_a_single_map_gets_the_whole_byte_budget_and_any_number_of_maps_shrinks():
    one = AttentionMaps(TRACKS[:1], torch.rand(1, 1, 1, 32, 32), (10.0,))
    payload = viewer_payload(one, IMAGES, max_map_bytes=16 * 16)
    assert (payload["height"], payload["width"]) == (16, 16)
    three = torch.rand(3, 8, 8)
    assert shrink(three, 64, 1).shape == (3, 1, 1)  # one cell a map: the mean
    assert torch.allclose(shrink(three, 64, 1)[:, 0, 0], three.mean(dim=(1, 2)))


def test_colormaps_are_the_packs_own():
    import base64

    table = torch.tensor(list(base64.b64decode(colormap_bytes("magma")))).reshape(COLORMAP_ENTRIES, 3)
    expected = (apply_colormap(torch.linspace(0, 1, COLORMAP_ENTRIES), "magma") * 255).round()
    assert torch.equal(table.float(), expected)


def test_a_map_of_zeros_is_present_with_scale_0():
    maps = random_maps()
    maps.maps[1, 0, 1] = 0.0
    payload = viewer_payload(maps, IMAGES)
    assert payload["scales"][1][0][1] == 0.0
    assert (decode_maps(payload)[1, 0, 1] == 0).all()


@pytest.fixture(scope="module")
def recorded_run(checkpoint):
    """A real run: Record → KSampler (Delayed Negative), negative from step 2 of 4 → Collect → decode."""
    model, clip, vae = checkpoint
    positive, negative = "portrait photo of a man with glasses", "glasses"
    patched, recording = RecordAttentionMaps.execute(model, clip, positive, negative, "man, glasses", "glasses",
                                                     "all").result
    samples = DelayedNegativeKSampler.execute(
        model=patched, seed=3, steps=4, cfg=5.0, sampler_name="euler", scheduler="normal",
        positive=stock.encode(clip, positive), negative=stock.encode(clip, negative),
        latent_image=stock.empty_latent(64, 48, batch_size=2), denoise=1.0, negative_start=2, negative_end=-1,
        timing_unit="step", before_negative="empty prompt", clip=clip).result[0]
    maps = CollectAttentionMaps.execute(recording, samples).result[0]
    with torch.inference_mode():  # as ComfyUI runs its nodes
        image = nodes.VAEDecode().decode(vae, samples)[0]
    return maps, image


def test_the_node_on_a_real_run_returns_the_maps_words_start_and_images_once(recorded_run):
    import folder_paths

    maps, image = recorded_run
    output = AttentionViewer.execute(attention_maps=maps, image=image)
    assert output.result is None  # an output node: nothing to wire on
    [payload] = output.ui[UI_KEY]
    json.dumps(payload, allow_nan=False)
    assert payload["steps"] == 4 and payload["batch"] == 2
    assert (payload["height"], payload["width"]) == (6, 8)  # the 48x64 image's latent
    assert [(t["word"], t["branch"]) for t in payload["tracks"]] == \
        [("man", "positive"), ("glasses", "positive"), ("glasses", "unconditional"), ("<end>", "unconditional")]
    assert payload["negative_start"] == 2
    decoded = decode_maps(payload)
    scale = scales(payload)[..., None, None]
    assert torch.equal(decoded.isnan(), maps.maps.isnan())
    assert ((decoded - maps.maps).abs().nan_to_num(0.0) <= scale / 2 + 1e-7).all()
    assert [entry["type"] for entry in payload["images"]] == ["temp", "temp"]
    for entry in payload["images"]:
        assert (Path(folder_paths.get_temp_directory()) / entry["subfolder"] / entry["filename"]).is_file()


def test_a_decoded_video_shows_under_each_latent_frame_the_first_image_it_made():
    from PIL import Image
    import folder_paths

    frames, videos = 3, 2
    maps = torch.rand(STEPS, len(TRACKS), videos * frames, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1))
    video = AttentionMaps(TRACKS, maps, tuple(float(10 - s) for s in range(STEPS)), None, frames)
    # Wan's VAE: 1 + 4 x (3 - 1) = 9 decoded frames per video; image i is painted with the grey i / 17
    images = torch.stack([torch.full((16, 16, 3), i / 17) for i in range(videos * 9)])
    [payload] = AttentionViewer.execute(attention_maps=video, image=images).ui[UI_KEY]
    assert payload["batch"] == videos * frames and len(payload["images"]) == videos * frames
    shown = []
    for entry in payload["images"]:
        with Image.open(Path(folder_paths.get_temp_directory()) / entry["subfolder"] / entry["filename"]) as picture:
            shown.append(round(picture.getpixel((0, 0))[0] / 255 * 17))
    assert shown == [0, 1, 5, 9, 10, 14]  # each latent frame's first decoded frame
