"""Turn recorded cross-attention maps into ComfyUI IMAGE and MASK tensors.

Pure tensor code (torch, numpy, Pillow): no model and no ComfyUI import, so it can be tested alone.
IMAGE is float32 [batch, height, width, 3] in 0..1; MASK is float32 [batch, height, width] in 0..1.
"""

from .chart import BRANCHES, Series, strength_chart
from .colormaps import COLORMAP_NAMES, apply_colormap
from .grid import GridLayout, word_step_grid
from .labelled_grid import labelled_grid
from .mask import word_mask
from .normalize import NORMALIZATION_MODES, normalize_maps
from .overlay import heatmap_overlay
from .resize import upsample_maps

__all__ = [
    "BRANCHES",
    "COLORMAP_NAMES",
    "GridLayout",
    "NORMALIZATION_MODES",
    "Series",
    "apply_colormap",
    "heatmap_overlay",
    "labelled_grid",
    "normalize_maps",
    "strength_chart",
    "upsample_maps",
    "word_mask",
    "word_step_grid",
]
