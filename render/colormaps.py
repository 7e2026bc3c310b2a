"""Colormaps as short tables of evenly spaced anchor colours, interpolated linearly.

The perceptual maps (viridis, magma, inferno, turbo) are sampled from matplotlib's 256-entry
tables: nine anchors keep viridis/magma/inferno within a few percent of the originals; turbo
bends more, so it needs seventeen. "jet" is MATLAB's definition, which is exactly linear between eighths.
Keeping the tables here avoids a matplotlib dependency inside ComfyUI.
"""

import torch
from torch import Tensor

_ANCHORS: dict[str, tuple[str, ...]] = {
    "viridis": ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21908c",
                "#27ad81", "#5dc863", "#aadc32", "#fde725"),
    "magma": ("#000004", "#1d1147", "#51127c", "#822681", "#b63679",
              "#e65164", "#fb8861", "#fec287", "#fcfdbf"),
    "inferno": ("#000004", "#210c4a", "#56106e", "#89226a", "#bb3754",
                "#e35932", "#f98c0a", "#f9c932", "#fcffa4"),
    "turbo": ("#30123b", "#4040a1", "#466be3", "#4293ff", "#29bbec", "#18dcc3",
              "#31f299", "#6bfd64", "#a3fd3c", "#cced34", "#edd03a", "#fdae35",
              "#fb8022", "#ec520f", "#d23105", "#ac1701", "#7a0403"),
    "jet": ("#00007f", "#0000ff", "#007fff", "#00ffff", "#7fff7f",
            "#ffff00", "#ff7f00", "#ff0000", "#7f0000"),
    "gray": ("#000000", "#ffffff"),
}

COLORMAP_NAMES: list[str] = list(_ANCHORS)


def hex_to_rgb(colour: str) -> tuple[float, float, float]:
    """Turn "#rrggbb" into an (r, g, b) triple in 0..1."""
    return tuple(int(colour[i:i + 2], 16) / 255.0 for i in (1, 3, 5))


def colormap_table(name: str) -> Tensor:
    """The anchor colours of colormap `name` as a float32 tensor [anchors, 3] in 0..1."""
    if name not in _ANCHORS:
        raise ValueError(f"Unknown colormap {name!r}; choose one of: {', '.join(COLORMAP_NAMES)}.")
    return torch.tensor([hex_to_rgb(colour) for colour in _ANCHORS[name]], dtype=torch.float32)


def apply_colormap(values: Tensor, name: str) -> Tensor:
    """Colour every value (0..1, clamped) with colormap `name`: shape [...] -> [..., 3].

    NaN values give NaN colours, so callers can paint "absent" entries their own way.
    """
    table = colormap_table(name).to(values.device)
    position = values.float().clamp(0.0, 1.0) * (len(table) - 1)
    lower = torch.nan_to_num(position).floor().long().clamp(max=len(table) - 2)
    fraction = (position - lower).unsqueeze(-1)
    return table[lower] * (1.0 - fraction) + table[lower + 1] * fraction
