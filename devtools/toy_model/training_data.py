"""Training batches: freshly drawn portraits, their latents and the caption each is shown with.

Every batch is drawn from a seeded generator, so a training run is reproducible, and never
repeats an image (drawing costs far less than a training step).
"""

import numpy as np
import torch

from .captions import training_caption
from .portraits import Portrait, draw, random_portrait
from .taesd_vae import patch_features

STATISTICS_SEED = 20261129
STATISTICS_COUNT = 2048


def draw_images(portraits: list[Portrait]) -> torch.Tensor:
    """N x 3 x 64 x 64 float32 images in [0, 1]."""
    return torch.from_numpy(np.stack([draw(p).image.transpose(2, 0, 1) for p in portraits]))


def latent_statistics() -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of the patch features over a fixed set of portraits."""
    rng = np.random.default_rng(STATISTICS_SEED)
    features = patch_features(draw_images([random_portrait(rng) for _ in range(STATISTICS_COUNT)]))
    return features.mean(dim=(0, 2, 3)), features.std(dim=(0, 2, 3))


def training_batch(rng: np.random.Generator, count: int) -> tuple[torch.Tensor, list[str]]:
    """`count` new portraits (images in [0, 1]) and the caption each is trained with."""
    portraits = [random_portrait(rng) for _ in range(count)]
    captions = [training_caption(p.glasses, p.mustache, p.hat, rng) for p in portraits]
    return draw_images(portraits), captions
