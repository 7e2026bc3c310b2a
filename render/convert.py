"""Moves between torch colour tensors and PIL pictures."""

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8(colours: Tensor) -> np.ndarray:
    """Colours [..., 3] in 0..1 as a uint8 numpy array for PIL (values clamped, rounded)."""
    return (colours.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()


def pil_to_image(picture: Image.Image) -> Tensor:
    """A PIL picture as a ComfyUI IMAGE: float32 [1, height, width, 3] in 0..1."""
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).unsqueeze(0)
