"""A word's attention over a range of sampler steps as a ComfyUI MASK (e.g. to inpaint where
a negative-prompt word acted)."""

import torch
from torch import Tensor

from .resize import upsample_maps


def word_mask(maps: Tensor, first_step: int, last_step: int, height: int, width: int,
              threshold: float | None = None) -> Tensor:
    """Mean of one word's maps [steps, h, w] over steps first_step..last_step (inclusive) as a
    MASK [1, height, width] in 0..1.

    Steps where the word is absent (NaN) are left out of the mean; if it is absent at every step
    in the range the mask is empty (zeros). With `threshold`, pixels at or above it become 1 and
    the rest 0.
    """
    if maps.ndim != 3:
        raise ValueError(f"Expected one word's maps shaped [steps, height, width], got {tuple(maps.shape)}.")
    steps = maps.shape[0]
    if not 0 <= first_step <= last_step < steps:
        raise ValueError(f"Step range {first_step}..{last_step} is empty or outside the recorded steps; "
                         f"pick first_step <= last_step within 0..{steps - 1}.")
    # Absence is per map: the mean is NaN everywhere (and the mask empty) if the word is absent throughout.
    mean = torch.nanmean(maps[first_step:last_step + 1].float(), dim=0)
    low, high = mean.min(), mean.max()
    scaled = (mean - low) / (high - low) if high > low else torch.zeros_like(mean)
    mask = upsample_maps(scaled, height, width).clamp(0.0, 1.0).unsqueeze(0)
    return (mask >= threshold).float() if threshold is not None else mask
