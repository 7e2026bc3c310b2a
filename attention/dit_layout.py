"""Where the text and the image sit in a DiT's attention calls, taken from the model itself.

The DiT families attend to the prompt in one of two ways:
- joint attention (SD3.x's MMDiT, Flux, Flux.2 and Chroma, Qwen-Image, Z-Image): one sequence
  of [registers, text tokens, image tokens, reference-image tokens], text first, softmax over all
  of it; Flux's single-stream blocks run over the same sequence;
- cross-attention (Wan 2.x video): the image tokens' queries against the text's keys alone.

The text's token count is the conditioning's (`c_crossattn`, as the model gets it for this
evaluation); the image tokens are the latent cut into the model's patches, row by row (frame by
frame for video), padded up to whole patches at the bottom and right, as ComfyUI's
`pad_to_patch_size` does.

Two families pad the text, each its own way (read in both hosts' model code):
- Flux.2 (model_base.Flux2.extra_conds) pads each prompt's conditioning *in front* with zeros up
  to 512 tokens, so a prompt's tokens end where the text ends (`prompt_at_text_end`); the
  recording moves each prompt's columns by its own padding.
- Z-Image (NextDiT, model_base.Lumina2, `pad_tokens_multiple` 32) refines the caption alone
  (context refiner) and the image alone (noise refiner), then runs its joint layers over
  [caption, caption pad tokens, image, image pad tokens], caption and image each padded with a
  learned token to whole multiples of 32. Only those joint calls see both, and nothing but the
  image's padding follows the image (`image_padding`): an omni edit (0.33: reference images
  before the image) gives a longer sequence, which is not taken.
"""

import dataclasses
import math
from dataclasses import dataclass

import torch

# ComfyUI's model classes (comfy.model_base) whose text attention is mapped: name -> (family, joint).
FAMILIES = {
    "SD3": ("SD3.x", True),
    "Flux": ("Flux", True),
    "Chroma": ("Chroma", True),
    "Flux2": ("Flux.2", True),  # dev and Klein
    "QwenImage": ("Qwen-Image", True),
    "Lumina2": ("Z-Image", True),  # ComfyUI's Lumina2 class runs Z-Image (supported_models.ZImage)
    "WAN21": ("Wan 2.1", False),
    "WAN22": ("Wan 2.2", False),
}


# model_base classes whose extra_conds pad the conditioning in front (Flux2: with zeros up to 512 tokens).
TEXT_PADDED_IN_FRONT = {"Flux2"}


def family_of(model) -> tuple[str, bool] | None:
    """(family name, joint attention?) of a ModelPatcher's model, or None for a model not mapped."""
    return FAMILIES.get(type(model.model).__name__)


def evaluation_layout(model):
    """For a mapped ModelPatcher, a function giving the TokenLayout of one evaluation from the
    conditioning's length as the model gets it (c_crossattn) and the latent's (frames, height, width)."""
    diffusion_model = model.get_model_object("diffusion_model")
    _family, joint = family_of(model)
    patch = patch_size(diffusion_model)
    registers = int(getattr(diffusion_model, "register_length", 0) or 0)
    at_end = type(model.model).__name__ in TEXT_PADDED_IN_FRONT
    # NextDiT (Z-Image) pads caption and image to whole multiples; 1: no padding (Lumina Image 2.0)
    multiple = (diffusion_model.pad_tokens_multiple or 1) if hasattr(diffusion_model, "pad_tokens_multiple") else None

    def layout(text_tokens: int, latent: tuple[int, int, int]) -> TokenLayout:
        plain = TokenLayout(joint, registers, text_tokens, patch, latent, prompt_at_text_end=at_end)
        if multiple is None:
            return plain
        return dataclasses.replace(plain, text_padding=-text_tokens % multiple,
                                   image_padding=-plain.image_tokens % multiple)

    return layout


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
    text_padding: int = 0  # tokens between the text and the image (Z-Image's caption pad tokens)
    image_padding: int | None = None  # None: anything may follow the image; else only this many pad tokens do
    prompt_at_text_end: bool = False  # each prompt's tokens end where the text ends (Flux.2 pads in front)

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(math.ceil(size / step) for size, step in zip(self.latent, self.patch))

    @property
    def image_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def image_start(self) -> int:
        return self.text_start + self.text_tokens + self.text_padding if self.joint else 0

    def attends_to_text(self, queries: int, keys: int) -> bool:
        """Whether an attention call of these lengths is the image attending to the text.

        Joint: queries and keys are the whole sequence (reference images may follow, or on Z-Image
        exactly the image's pad tokens). Cross: the keys are the text. Image-only or text-only
        self-attention (Wan's, SD3.5's second attention, Z-Image's refiners) is neither.
        """
        if self.joint:
            end = self.image_start + self.image_tokens
            if self.image_padding is not None:
                return queries == keys == end + self.image_padding
            return queries == keys >= end
        return keys == self.text_tokens and queries == self.image_tokens != keys

    def prompt_offset(self, prompt_tokens: int | None) -> int:
        """Where column 0 of a prompt's own conditioning (`prompt_tokens` long) sits in the text."""
        if not self.prompt_at_text_end or not prompt_tokens or prompt_tokens >= self.text_tokens:
            return 0
        return self.text_tokens - prompt_tokens

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
