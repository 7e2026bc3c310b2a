"""Bring low-resolution attention maps (e.g. 16x16 latent tokens) up to display size."""

import torch.nn.functional as F
from torch import Tensor


def upsample_maps(maps: Tensor, height: int, width: int) -> Tensor:
    """Resize maps [..., h, w] to [..., height, width] bilinearly, keeping the leading dims."""
    if maps.ndim < 2:
        raise ValueError(f"Expected maps shaped [..., height, width], got {tuple(maps.shape)}.")
    leading = maps.shape[:-2]
    flat = maps.float().reshape(-1, 1, *maps.shape[-2:])  # no maps at all (0 leading) resize to none too
    # align_corners=False matches how ComfyUI and PyTorch scale images, so a map lines up with
    # the picture it was recorded on.
    resized = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    return resized.reshape(*leading, height, width)
