"""Attention heat drawn over the generated picture, to show where a word acts."""

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .colormaps import apply_colormap
from .convert import pil_to_image
from .resize import upsample_maps
from .text import draw_text, label_font

LABEL_BOX = (20, 20, 20)
LABEL_TEXT = (245, 245, 245)


def heatmap_overlay(images: Tensor, heat: Tensor, colormap: str, opacity: float,
                    label: str | None = None) -> Tensor:
    """Blend heat [B, h, w] (0..1) coloured with `colormap` over images [B, H, W, 3].

    Each pixel mixes in its heat colour with weight opacity * heat, so cold regions keep the
    picture readable and only where the word attends gets tinted; NaN heat counts as 0.
    A batch of 1 on either side is repeated to match the other. `label`, if given, is written
    in the top-left corner.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Expected images shaped [batch, height, width, 3], got {tuple(images.shape)}.")
    if heat.ndim != 3:
        raise ValueError(f"Expected heat shaped [batch, height, width], got {tuple(heat.shape)}.")
    if images.shape[0] != heat.shape[0] and 1 not in (images.shape[0], heat.shape[0]):
        raise ValueError(f"{images.shape[0]} images but {heat.shape[0]} heat maps; "
                         "give one heat map per image, or a single one for all.")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity {opacity} must be between 0 and 1.")

    height, width = images.shape[1:3]
    heat = torch.nan_to_num(upsample_maps(heat.to(images.device), height, width)).clamp(0.0, 1.0)
    weight = (opacity * heat).unsqueeze(-1)
    blended = images.float() * (1.0 - weight) + apply_colormap(heat, colormap) * weight
    if label:
        _paste_label(blended, label)
    return blended


def _paste_label(images: Tensor, label: str) -> None:
    """Write `label` on a dark box into the top-left corner of every image, in place."""
    height, width = images.shape[1:3]
    font = label_font(max(12, height // 24))
    padding = max(3, height // 96)
    left, top, right, bottom = font.getbbox(label)
    box = Image.new("RGB", (right - left + 2 * padding, bottom - top + 2 * padding), LABEL_BOX)
    draw_text(ImageDraw.Draw(box), (padding, padding), label, font, LABEL_TEXT)
    patch = pil_to_image(box)[0, :height, :width].to(images.device)
    images[:, :patch.shape[0], :patch.shape[1]] = patch
