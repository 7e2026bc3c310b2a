"""Where the text and the image sit in a DiT's attention calls, taken from the model itself.

The DiT families attend to the prompt in one of two ways:
- joint attention (SD3.x's MMDiT, Flux and Chroma, Qwen-Image): one sequence of
  [registers, text tokens, image tokens, reference-image tokens], text first, softmax over all
  of it; Flux's single-stream blocks run over the same sequence;
- cross-attention (Wan 2.x video): the image tokens' queries against the text's keys alone.

The text's token count is the conditioning's (`c_crossattn`, as the model gets it for this
evaluation); the image tokens are the latent cut into the model's patches, row by row (frame by
frame for video), padded up to whole patches at the bottom and right, as ComfyUI's
`pad_to_patch_size` does.
"""

import math
from dataclasses import dataclass

import torch

# ComfyUI's model classes (comfy.model_base) whose text attention is mapped: name -> (family, joint).
FAMILIES = {
    "SD3": ("SD3.x", True),
    "Flux": ("Flux", True),
    "Chroma": ("Chroma", True),
    "QwenImage": ("Qwen-Image", True),
    "WAN21": ("Wan 2.1", False),
    "WAN22": ("Wan 2.2", False),
}


def family_of(model) -> tuple[str, bool] | None:
    """(family name, joint attention?) of a ModelPatcher's model, or None for a model not mapped."""
    return FAMILIES.get(type(model.model).__name__)


def patch_size(diffusion_model) -> tuple[int, int, int]:
    """The model's patch as (frames, rows, columns) of latent pixels per image token."""
    size = diffusion_model.patch_size
    if isinstance(size, int):
        return 1, size, size
    return (1, *size) if len(size) == 2 else tuple(size)


@dataclass(frozen=True)
class TokenLayout:
    """One model evaluation's sequence: where the text is, and how image tokens tile the latent."""

    joint: bool
    text_start: int  # registers come first in SD3.5-style MMDiTs
    text_tokens: int
    patch: tuple[int, int, int]
    latent: tuple[int, int, int]  # frames, height, width (frames 1 for images)

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(math.ceil(size / step) for size, step in zip(self.latent, self.patch))

    @property
    def image_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def image_start(self) -> int:
        return self.text_start + self.text_tokens if self.joint else 0

    def attends_to_text(self, queries: int, keys: int) -> bool:
        """Whether an attention call of these lengths is the image attending to the text.

        Joint: queries and keys are the whole sequence (reference images may follow). Cross: the
        keys are the text. Image-only self-attention (Wan's, SD3.5's second attention) is neither.
        """
        if self.joint:
            return queries == keys >= self.image_start + self.image_tokens
        return keys == self.text_tokens and queries == self.image_tokens != keys

    def to_latent(self, values: torch.Tensor) -> torch.Tensor:
        """[batch, words, image tokens] -> [words, batch x frames, height, width]: each latent pixel
        gets the value of the image token whose patch covers it (frames batch-major)."""
        batch, words = values.shape[:2]
        frames, height, width = self.latent
        grid = values.reshape(batch, words, *self.grid)
        for axis, step in enumerate(self.patch):
            if step > 1:
                grid = grid.repeat_interleave(step, dim=2 + axis)
        grid = grid[:, :, :frames, :height, :width]
        return grid.transpose(0, 1).reshape(words, batch * frames, height, width)
