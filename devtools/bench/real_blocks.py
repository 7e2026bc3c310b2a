"""One block of each family at its real width, heads and token counts, from ComfyUI's own classes.

For devtools/bench/bench_blocks.py (issue 22): the blocks the released models stack, built with
ComfyUI's classes at the configurations its model detection gives the released weights, seeded
random weights (normal, std 0.02: speed, not pictures) in float32 (what a CPU runs), batch 1 (one
cfg branch: a cfg batch of 2 doubles both sides of every ratio). Inputs at the real token counts
of a 1024x1024 image (Wan: 480p video). `tiny=True` gives the same classes and calls at the
tests' sizes, so that the bench cannot rot.

- Flux.1: DoubleStreamBlock and SingleStreamBlock, 3072 wide, 24 heads, mlp ratio 4; 4096
  image tokens (a 128x128 latent in 2x2 patches) + 512 T5 tokens; 19 double + 38 single blocks.
- SD3.5 Medium: mmdit JointBlock, 1536 wide, 24 heads, RMS q/k norms; 4096 image + 333 text
  tokens (77 CLIP + 256 T5); 24 blocks, 0-12 with the image-only second attention (MMDiT-X).
- Qwen-Image: QwenImageTransformerBlock, 3072 wide, 24 heads of 128; 4096 image + 100 text tokens;
  60 blocks.
- Wan 2.1 1.3B: WanAttentionBlock (t2v cross-attention), 1536 wide, 12 heads, ffn 8960; 480p is a
  60x104 latent, 1560 tokens per latent frame, 512 UMT5 tokens; 30 blocks. 81 frames are 21
  latent frames, 32,760 tokens: its self-attention alone is ~6.6 TFLOP, minutes a call on 2 CPU
  cores, so the block runs on fewer latent frames and bench_blocks scales (see `frames`).
- SD1.5 and SDXL: one SpatialTransformer of depth 1 (one BasicTransformerBlock with its proj_in
  and proj_out) at each cross-attention resolution of a 1024x1024 image's 128x128 latent, with
  the number of BasicTransformerBlocks the UNet has there. SD1.5 (a 512 model, here at 1024):
  320/640/1280/1280 channels, 8 heads, CLIP-L 77x768, at 128, 64, 32 and 16 (middle) latent
  pixels: 5 + 5 + 5 + 1 blocks. SDXL: 640/1280 channels, 64-wide heads, 77x2048, linear
  projections, at 64 (2 x 5 blocks) and 32 (10 x 6 blocks).
"""

from collections.abc import Callable
from dataclasses import dataclass

import comfy.ops
import torch
from comfy.ldm.flux.layers import DoubleStreamBlock, EmbedND, SingleStreamBlock
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.mmdit import JointBlock
from comfy.ldm.qwen_image.model import QwenImageTransformerBlock
from comfy.ldm.wan.model import WanAttentionBlock
from delayed_negative.attention.dit_layout import TokenLayout

OPERATIONS = comfy.ops.disable_weight_init  # what ComfyUI builds its models with (weights set below)
WAN_FRAMES = 21  # 81 video frames at 480p


@dataclass
class Block:
    """A built block, its inputs bound: `run(transformer_options)` calls it as its model does."""

    key: str
    model: str  # the model it belongs to, for the whole-model estimate
    title: str
    per_model: int  # blocks of this kind in the model
    module: torch.nn.Module
    run: Callable[[dict], object]
    latent_shape: tuple[int, ...]  # the latent whose maps a recording holds
    text_tokens: int
    layout: TokenLayout | None = None  # DiT: where the text and the image sit
    unet_block: tuple[str, int] | None = None  # UNet: ComfyUI's (group, number) of the block
    frames: tuple[int, int] | None = None  # video: (latent frames run, latent frames of the real run)


def seeded(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 0.02, generator=generator)
    return module.eval()


def randn(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def rope(text_tokens: int, frames: int, rows: int, columns: int, axes: list[int], text_positions: bool = False):
    """RoPE frequencies as Flux's EmbedND gives them, for text (position 0, or counted) then image ids."""
    image = torch.stack(torch.meshgrid(torch.arange(frames), torch.arange(rows), torch.arange(columns),
                                       indexing="ij"), dim=-1).reshape(1, -1, 3).float()
    text = torch.zeros(1, text_tokens, 3)
    if text_positions:
        text += torch.arange(text_tokens).reshape(1, -1, 1)
    return EmbedND(dim=sum(axes), theta=10000, axes_dim=axes)(torch.cat((text, image), dim=1))


def image_layout(text_tokens: int, latent: int, joint: bool = True) -> TokenLayout:
    return TokenLayout(joint, 0, text_tokens, (1, 2, 2), (1, latent, latent))


def flux_blocks(tiny: bool) -> list[Block]:
    hidden, heads, latent, text = (64, 2, 8, 24) if tiny else (3072, 24, 128, 512)
    head = hidden // heads
    grid = latent // 2
    pe = rope(text, 1, grid, grid, [head // 8, 7 * head // 16, 7 * head // 16])
    image, words, vec = randn(1, grid * grid, hidden, seed=1), randn(1, text, hidden, seed=2), randn(1, hidden, seed=3)
    double = seeded(DoubleStreamBlock(hidden_size=hidden, num_heads=heads, mlp_ratio=4.0, qkv_bias=True,
                                      operations=OPERATIONS), 10)
    single = seeded(SingleStreamBlock(hidden_size=hidden, num_heads=heads, mlp_ratio=4.0, operations=OPERATIONS), 11)
    joint = torch.cat((words, image), dim=1)
    shape = f"{hidden} wide, {heads} heads, mlp ratio 4; {grid * grid} image + {text} text tokens"
    latent_shape = (1, 16, latent, latent)
    return [
        Block("flux_double", "Flux.1", f"Flux.1 double block (DoubleStreamBlock, {shape})", 19, double,
              lambda options: double(image, words, vec, pe, transformer_options=options), latent_shape, text,
              image_layout(text, latent)),
        Block("flux_single", "Flux.1", f"Flux.1 single block (SingleStreamBlock, {shape})", 38, single,
              lambda options: single(joint, vec, pe, transformer_options=options), latent_shape, text,
              image_layout(text, latent)),
    ]


def sd35_blocks(tiny: bool) -> list[Block]:
    heads, latent, text = (2, 8, 24) if tiny else (24, 128, 333)
    hidden = 64 * heads  # MMDiT: 64 x depth wide, depth heads (SD3.5 Medium: depth 24)
    grid = latent // 2
    image, words, vec = randn(1, grid * grid, hidden, seed=1), randn(1, text, hidden, seed=2), randn(1, hidden, seed=3)
    blocks = []
    for key, second_attention, count in (("sd35_joint_dual", True, 13), ("sd35_joint", False, 11)):
        block = seeded(JointBlock(hidden, heads, mlp_ratio=4.0, qkv_bias=True, attn_mode="torch", pre_only=False,
                                  rmsnorm=False, scale_mod_only=False, swiglu=False, qk_norm="rms",
                                  x_block_self_attn=second_attention, operations=OPERATIONS), 12)
        kind = "with the image-only second attention (blocks 0-12)" if second_attention else "(blocks 13-23)"
        blocks.append(Block(
            key, "SD3.5 Medium", f"SD3.5 Medium joint block {kind} (JointBlock, {hidden} wide, {heads} heads; "
            f"{grid * grid} image + {text} text tokens)", count, block,
            lambda options, block=block: block(words, image, c=vec, use_checkpoint=False, transformer_options=options),
            (1, 16, latent, latent), text, image_layout(text, latent)))
    return blocks


def qwen_blocks(tiny: bool) -> list[Block]:
    heads, head, latent, text = (2, 32, 8, 24) if tiny else (24, 128, 128, 100)
    hidden, grid = heads * head, latent // 2
    pe = rope(text, 1, grid, grid, [head // 8, 7 * head // 16, 7 * head // 16], text_positions=True)
    image, words, vec = randn(1, grid * grid, hidden, seed=1), randn(1, text, hidden, seed=2), randn(1, hidden, seed=3)
    block = seeded(QwenImageTransformerBlock(dim=hidden, num_attention_heads=heads, attention_head_dim=head,
                                             operations=OPERATIONS), 13)
    return [Block("qwen", "Qwen-Image", f"Qwen-Image block (QwenImageTransformerBlock, {hidden} wide, {heads} heads; "
                  f"{grid * grid} image + {text} text tokens)", 60, block,
                  lambda options: block(image, words, None, vec, pe, transformer_options=options),
                  (1, 16, latent, latent), text, image_layout(text, latent))]


def wan_blocks(tiny: bool, frames: int) -> list[Block]:
    """Wan 2.1 1.3B's block on `frames` latent frames (the real run has WAN_FRAMES)."""
    heads, ffn, height, width, text, real_frames = (2, 96, 4, 8, 24, 2) if tiny else (12, 8960, 60, 104, 512,
                                                                                       WAN_FRAMES)
    hidden, head = 128 * heads, 128
    if tiny:
        hidden, head = 32 * heads, 32
    rows, columns = height // 2, width // 2
    third = head // 6
    freqs = rope(0, frames, rows, columns, [head - 4 * third, 2 * third, 2 * third]).movedim(1, 2)
    tokens = frames * rows * columns
    image, words, modulation = randn(1, tokens, hidden, seed=1), randn(1, text, hidden, seed=2), randn(1, 6, hidden,
                                                                                                        seed=3)
    settings = {"operations": OPERATIONS, "device": None, "dtype": torch.float32}
    block = seeded(WanAttentionBlock("t2v_cross_attn", hidden, ffn, heads, qk_norm=True, cross_attn_norm=True,
                                     eps=1e-6, operation_settings=settings), 14)
    return [Block("wan", "Wan 2.1 1.3B", f"Wan 2.1 1.3B block (WanAttentionBlock, {hidden} wide, {heads} heads, ffn "
                  f"{ffn}; {tokens} image tokens = {frames} latent frames of {rows}x{columns}, {text} text tokens)",
                  30, block, lambda options: block(image, modulation, freqs, words, transformer_options=options),
                  (1, 16, frames, height, width), text,
                  TokenLayout(False, 0, text, (1, 2, 2), (frames, height, width)), frames=(frames, real_frames))]


# (latent pixels, channels, BasicTransformerBlocks there) of a 1024x1024 image's 128x128 latent
SD15_LEVELS = [(128, 320, 5), (64, 640, 5), (32, 1280, 5), (16, 1280, 1)]
SDXL_LEVELS = [(64, 640, 10), (32, 1280, 60)]
UNET_GROUPS = {128: ("input", 1), 64: ("input", 4), 32: ("input", 7), 16: ("middle", 0)}


def unet_blocks(tiny: bool) -> list[Block]:
    scale = 16 if tiny else 1  # tiny: an 8x8 latent, 32 channels where the real UNet has 320
    blocks = []
    for model, levels, context, linear in (("SD1.5", SD15_LEVELS, 768, False), ("SDXL", SDXL_LEVELS, 2048, True)):
        for size, channels, count in levels:
            channels = channels // 10 if tiny else channels
            heads = 8 if model == "SD1.5" else channels // (16 if tiny else 64)
            side = size // scale
            transformer = seeded(SpatialTransformer(channels, heads, channels // heads, depth=1, context_dim=context,
                                                    use_linear=linear, use_checkpoint=False,
                                                    operations=OPERATIONS), 15)
            pixels, prompt = randn(1, channels, side, side, seed=1), randn(1, 77, context, seed=2)
            blocks.append(Block(
                f"{model.lower().replace('.', '')}_{size}", model,
                f"{model} transformer at {side}x{side} (SpatialTransformer depth 1, {channels} channels, {heads} "
                f"heads; {side * side} image + 77 text tokens; {count} such blocks in the UNet)", count, transformer,
                lambda options, transformer=transformer, pixels=pixels, prompt=prompt: transformer(
                    pixels, context=prompt, transformer_options=options),
                (1, 4, 128 // scale, 128 // scale), 77, unet_block=UNET_GROUPS[size]))
    return blocks


def all_blocks(tiny: bool, wan_frames: int) -> list[tuple[tuple[str, ...], Callable[[], list[Block]]]]:
    """(the blocks' keys, their builder) for every family, each built when its turn comes (a real
    Flux double block holds 1.4 GB of float32 weights: one family in memory at a time)."""
    unet = tuple(f"{model}_{size}" for model, levels in (("sd15", SD15_LEVELS), ("sdxl", SDXL_LEVELS))
                 for size, _channels, _count in levels)
    return [(unet, lambda: unet_blocks(tiny)), (("sd35_joint_dual", "sd35_joint"), lambda: sd35_blocks(tiny)),
            (("flux_double", "flux_single"), lambda: flux_blocks(tiny)), (("qwen",), lambda: qwen_blocks(tiny)),
            (("wan",), lambda: wan_blocks(tiny, wan_frames))]
