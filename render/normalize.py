"""Scale attention maps into 0..1 before they are coloured.

The choice of group decides what a viewer can compare: "per map" shows where each word looks at
each step, "per word over steps" shows how one word's strength grows over sampling (the paper's
observation that negative-prompt words act only later), "global" compares words with each other.
"""

import torch
from torch import Tensor

# Dimensions of a [steps, words, height, width] tensor that share one min..max.
_GROUP_DIMS: dict[str, tuple[int, ...]] = {
    "per map": (2, 3),
    "per word over steps": (0, 2, 3),
    "global": (0, 1, 2, 3),
}

NORMALIZATION_MODES: list[str] = list(_GROUP_DIMS)


def normalize_maps(maps: Tensor, mode: str, apart: list[int] = ()) -> Tensor:
    """Scale maps [steps, words, height, width] to 0..1, each group to its own min..max.

    NaN marks a word absent at a step: it is left out of min/max and stays NaN. A group whose
    values are all equal becomes zeros rather than dividing by zero. The words `apart` (the
    negative's influence, in latent units rather than attention shares) never share a range with
    the others: in "global" they are one group of their own.
    """
    if apart and mode == "global":
        rest = [word for word in range(maps.shape[1]) if word not in apart]
        scaled = torch.empty_like(maps, dtype=torch.float32)
        for group in (list(apart), rest):
            if group:
                scaled[:, group] = normalize_maps(maps[:, group], mode)
        return scaled
    if mode not in _GROUP_DIMS:
        raise ValueError(f"Unknown normalization {mode!r}; choose one of: {', '.join(NORMALIZATION_MODES)}.")
    if maps.ndim != 4:
        raise ValueError(f"Expected maps shaped [steps, words, height, width], got {tuple(maps.shape)}.")
    maps = maps.float()
    dims = _GROUP_DIMS[mode]
    present = ~torch.isnan(maps)
    low = torch.where(present, maps, torch.inf).amin(dim=dims, keepdim=True)
    high = torch.where(present, maps, -torch.inf).amax(dim=dims, keepdim=True)
    span = high - low
    varies = span > 0
    scaled = torch.where(varies, (maps - low) / torch.where(varies, span, 1.0), 0.0)
    return torch.where(present, scaled, torch.nan)
