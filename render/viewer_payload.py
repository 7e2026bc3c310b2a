"""What the Attention Viewer node sends to its frontend widget (web/attention_viewer.js), once per run.

The widget explores steps, words, branches and batch items in the browser, without queueing a
prompt, so everything it shows must be in this one JSON payload. The maps are its bulk
(steps × tracks × batch × height × width values), so each map travels as bytes: its values
divided by its own scale (its largest value / 255), rounded, base64-encoded in one block. A
value comes back as byte × scale, within scale / 2 of the recorded share. Maps larger than
MAX_MAP_SIDE on a side (latents above 512 pixels) are averaged down to it first, and further
if the maps would pass MAX_MAP_BYTES (many steps, words and images): the page holds them all.
The per-step strengths of the chart are computed from the full maps, not from the bytes.
"""

import base64
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..attention.maps import AttentionMaps
from .colormaps import COLORMAP_NAMES, apply_colormap
from .normalize import NORMALIZATION_MODES

MAX_MAP_SIDE = 64
MAX_MAP_BYTES = 16 * 2**20
COLORMAP_ENTRIES = 256


def negative_start_step(maps: AttentionMaps) -> int | None:
    """The first step at which a word of the negative prompt has a map; None if none ever has."""
    negative = [index for index, track in enumerate(maps.tracks) if track.prompt == "negative"]
    if not negative:
        return None
    present = (~maps.maps[:, negative].isnan()).flatten(1).any(dim=1).nonzero()
    return int(present[0]) if len(present) else None


def shrink(maps: torch.Tensor, max_side: int, max_cells: int | None = None) -> torch.Tensor:
    """[..., height, width] averaged down so that neither side exceeds max_side and a map has at most
    max_cells cells (aspect kept)."""
    height, width = maps.shape[-2:]
    factor = math.ceil(max(height, width) / max_side)
    if max_cells is not None:
        factor = max(factor, math.ceil(math.sqrt(height * width / max(max_cells, 1))))
    if factor <= 1:
        return maps
    size = (math.ceil(height / factor), math.ceil(width / factor))
    flat = maps.reshape(-1, 1, height, width)
    return F.adaptive_avg_pool2d(flat, size).reshape(*maps.shape[:-2], *size)


def quantize(maps: torch.Tensor) -> tuple[np.ndarray, list]:
    """Bytes [..., h, w] and one scale per map (nested lists like maps[..., 0, 0]); None marks an absent map."""
    absent = maps.isnan().flatten(-2).all(dim=-1)
    values = maps.nan_to_num(0.0).clamp(min=0.0)
    scale = values.flatten(-2).amax(dim=-1) / 255.0
    safe = torch.where(scale > 0, scale, 1.0)[..., None, None]
    codes = (values / safe).round().clamp(0, 255).to(torch.uint8)
    scales = torch.where(absent, torch.nan, scale)
    return codes.numpy(), nan_to_none(scales)


def nan_to_none(values: torch.Tensor) -> list:
    """A tensor as nested lists of floats, NaN as None (JSON has no NaN)."""
    return np.vectorize(lambda value: None if math.isnan(value) else float(value), otypes=[object])(
        values.double().numpy()).tolist()


def colormap_bytes(name: str) -> str:
    """The colormap as COLORMAP_ENTRIES RGB triples (uint8), base64: entry i colours the value i / 255."""
    colours = apply_colormap(torch.linspace(0.0, 1.0, COLORMAP_ENTRIES), name)
    return base64.b64encode((colours * 255.0).round().to(torch.uint8).numpy().tobytes()).decode("ascii")


def viewer_payload(maps: AttentionMaps, images: list[dict], max_map_side: int = MAX_MAP_SIDE,
                   max_map_bytes: int = MAX_MAP_BYTES) -> dict:
    """The JSON-ready payload of one run. `images`: the decoded image(s) as saved for the UI
    ({filename, subfolder, type}, one per batch item, or one for all)."""
    values = maps.maps.detach().float().cpu()
    steps, _, batch, latent_height, latent_width = values.shape
    small = shrink(values, max_map_side, max_map_bytes // max(1, values[..., 0, 0].numel()))
    codes, scales = quantize(small)
    return {
        "steps": steps,
        "batch": batch,
        "height": small.shape[-2],
        "width": small.shape[-1],
        "latent_height": latent_height,
        "latent_width": latent_width,
        "tracks": [{"word": track.word, "label": track.label, "branch": track.branch, "prompt": track.prompt}
                   for track in maps.tracks],
        "sigmas": [float(sigma) for sigma in maps.sigmas],
        "cfg": None if maps.cfg is None else nan_to_none(maps.cfg.float()),
        "negative_start": negative_start_step(maps),
        "not_evaluated": maps.steps_not_evaluated(),  # steps a cache skipped: no maps, said so
        "strength": nan_to_none(maps.strength().float()),  # [steps][tracks][batch], from the full maps
        # [steps][batch]: the negative influence's share of the guidance (None where not measured)
        "influence_share": None if maps.influence_share is None else nan_to_none(maps.influence_share.float()),
        "scales": scales,  # [steps][tracks][batch]
        "maps": base64.b64encode(codes.tobytes()).decode("ascii"),  # uint8 [steps, tracks, batch, h, w]
        "normalizations": list(NORMALIZATION_MODES),
        "colormaps": {name: colormap_bytes(name) for name in COLORMAP_NAMES},
        "images": [dict(image) for image in images],
    }


def decode_maps(payload: dict) -> torch.Tensor:
    """The maps back from a payload, float32 [steps, tracks, batch, height, width], NaN where absent:
    what the widget computes, here for the tests."""
    shape = (payload["steps"], len(payload["tracks"]), payload["batch"], payload["height"], payload["width"])
    codes = np.frombuffer(base64.b64decode(payload["maps"]), dtype=np.uint8).reshape(shape)
    scales = torch.from_numpy(np.array(payload["scales"], dtype=np.float64).reshape(shape[:3]))  # None -> NaN
    return (torch.from_numpy(codes.astype(np.float64)) * scales[..., None, None]).float()
