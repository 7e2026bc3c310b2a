"""Small in-memory DiT models of the families people sample today, from ComfyUI's own classes.

Each is the family's real model class (MMDiT for SD3.x, Flux's double/single-stream DiT, Flux.2's
on the same architecture, Qwen-Image's MMDiT, Z-Image's NextDiT, Wan 2.1's video DiT) with its
own model sampling (flow matching with the family's shift) and latent format (16 channels,
Flux.2's 128; Wan's video latents have frames), at a few blocks and small widths, with seeded
weights. Text conditioning is a random tensor of the family's (reduced) text width: these models
test sampling paths, not prompts.

Each entry of FAMILIES gives: the model, the latent shape, and a function making a
conditioning (a list of [tensor, extras]) from a generator.
"""

import dataclasses
from dataclasses import dataclass
from typing import Callable

import comfy.supported_models as supported
import torch
from comfy.ldm.flux.model import FluxParams

from devtools.models.tiny_models import in_memory_model

TEXT_TOKENS = 12
# Weights drawn wider than the default 0.02 where the prompt must visibly move the latent: with
# one block and small widths, Qwen-Image's text otherwise changes it by about 1e-4, Flux.2's (its
# 12 tokens among 512) by about 1e-6.
TEXT_SENSITIVE_STD = 0.1


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable
    latent_shape: tuple[int, ...]
    text_width: int
    pooled_width: int | None = None

    def conditioning(self, generator: torch.Generator) -> list:
        # CLIP Text Encode always sets pooled_output, None for text encoders without one (T5, UMT5, Qwen)
        pooled = torch.randn(1, self.pooled_width, generator=generator) if self.pooled_width else None
        extras = {"pooled_output": pooled}
        return [[torch.randn(1, TEXT_TOKENS, self.text_width, generator=generator), extras]]


def tiny_sd3(seed: int = 1234, scale: int = 1, registers: int = 0):
    """SD3.x: MMDiT, joint attention over text and image tokens, pooled CLIP vector, shift 3.
    (`scale` multiplies the blocks, heads and width of every builder here, for the benchmark.)"""
    depth = 2 * scale  # MMDiT's width is 64 x depth, with `depth` heads
    config = {"in_channels": 16, "pos_embed_scaling_factor": None, "patch_size": 2, "depth": depth,
              "adm_in_channels": 32, "pos_embed_max_size": 16, "num_patches": 256,
              "context_embedder_config": {"target": "torch.nn.Linear",
                                          "params": {"in_features": 48, "out_features": 64 * depth}}}
    if registers:
        config["register_length"] = registers  # learned tokens before the text (SD3.5-style MMDiTs can have them)
    return in_memory_model(supported.SD3, config, seed)


def tiny_flux(seed: int = 1234, guidance_embed: bool = False, scale: int = 1):
    """Flux architecture without distilled guidance, sampled with real CFG (as Chroma-like models are);
    with `guidance_embed`, a guidance-distilled one like Flux dev."""
    return in_memory_model(supported.Flux, flux_config(guidance_embed, scale), seed)


def flux_config(guidance_embed: bool, scale: int = 1) -> dict:
    config = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2, "hidden_size": 64 * scale,
              "num_heads": 2 * scale, "axes_dim": [8, 12, 12], "theta": 10000, "mlp_ratio": 2.0, "qkv_bias": True,
              "depth": scale, "depth_single_blocks": scale, "context_in_dim": 48, "vec_in_dim": 32,
              "guidance_embed": guidance_embed}
    if "txt_ids_dims" in {field.name for field in dataclasses.fields(FluxParams)}:
        config["txt_ids_dims"] = []  # newer releases: which text position ids carry RoPE (none for Flux.1)
    return config


def tiny_flux2(seed: int = 1234, scale: int = 1):
    """Flux.2 (dev and Klein share ComfyUI's Flux2 class): the Flux double/single-stream DiT with
    Flux.2's traits as ComfyUI's model detection gives them: 128 latent channels in 1 x 1 patches,
    RoPE over four axes (the fourth the text's position), global modulation, no biases, no pooled
    vector; its conditioning padded in front to 512 tokens by the model (model_base.Flux2)."""
    config = {"image_model": "flux2", "in_channels": 128, "out_channels": 128, "patch_size": 1,
              "hidden_size": 64 * scale, "num_heads": 2 * scale, "axes_dim": [8, 8, 8, 8], "theta": 2000,
              "mlp_ratio": 3.0, "qkv_bias": False, "depth": scale, "depth_single_blocks": scale,
              "context_in_dim": 48, "vec_in_dim": None, "guidance_embed": False, "global_modulation": True,
              "mlp_silu_act": True, "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0}
    if "txt_ids_dims" in {field.name for field in dataclasses.fields(FluxParams)}:
        config["txt_ids_dims"] = [3]  # newer releases name the text's RoPE axis (0.3.75: any 4-axis model)
    return in_memory_model(supported.Flux2, config, seed, std=TEXT_SENSITIVE_STD)


def tiny_z_image(seed: int = 1234, scale: int = 1):
    """Z-Image (Turbo): ComfyUI's NextDiT (model_base.Lumina2) with Z-Image's traits as its model
    detection gives them: Qwen3 text states through a context refiner, the image through a noise
    refiner, then joint layers over [caption, image], each padded to whole 32 tokens with learned
    pad tokens; Z-Image's modulation and time scale. The width is 256 (Z-Image's modulation reads
    256 features of the timestep embedding)."""
    config = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 256 * scale,
              "cap_feat_dim": 48, "n_layers": scale, "n_refiner_layers": 1, "n_heads": 8 * scale,
              "n_kv_heads": 8 * scale, "qk_norm": True, "axes_dims": [8, 12, 12], "axes_lens": [1536, 512, 512],
              "rope_theta": 256.0, "ffn_dim_multiplier": 8.0 / 3.0, "z_image_modulation": True,
              "time_scale": 1000.0, "pad_tokens_multiple": 32}
    return in_memory_model(supported.ZImage, config, seed)


def tiny_auraflow(seed: int = 1234):
    """AuraFlow's MMDiT (model_base.AuraFlow): a DiT family the attention maps and NAG do not map,
    for the message that says so (not sampled by the tests)."""
    config = {"in_channels": 4, "out_channels": 4, "patch_size": 2, "dim": 64, "n_layers": 2, "n_double_layers": 1,
              "n_heads": 2, "global_conddim": 64, "cond_seq_dim": 48, "max_seq": 64}
    return in_memory_model(supported.AuraFlow, config, seed)


def tiny_chroma(seed: int = 1234, scale: int = 1):
    """Chroma: the Flux architecture without the guidance embedding or pooled vector, its modulations
    from a small approximator network; T5-XXL text (reduced width here)."""
    from comfy.ldm.chroma.model import ChromaParams

    config = {"image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": 48,  # per 2x2 patch
              "hidden_size": 64 * scale, "mlp_ratio": 2.0, "num_heads": 2 * scale, "depth": scale,
              "depth_single_blocks": scale, "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2,
              "qkv_bias": True, "in_dim": 64, "out_dim": 64 * scale, "hidden_dim": 64, "n_layers": 1}
    fields = {field.name for field in dataclasses.fields(ChromaParams)}
    config.update({name: value for name, value in (("txt_ids_dims", []), ("vec_in_dim", 32)) if name in fields})
    return in_memory_model(supported.Chroma, config, seed)


def tiny_qwen_image(seed: int = 1234, scale: int = 1):
    """Qwen-Image: MMDiT over Qwen2.5-VL text states (reduced width here)."""
    config = {"image_model": "qwen_image", "in_channels": 64, "out_channels": 16, "num_layers": scale,
              "attention_head_dim": 32, "num_attention_heads": 2 * scale, "joint_attention_dim": 48,
              "axes_dims_rope": (8, 12, 12)}
    return in_memory_model(supported.QwenImage, config, seed, std=TEXT_SENSITIVE_STD)


def tiny_wan21(seed: int = 1234, scale: int = 1):
    """Wan 2.1 text-to-video: cross-attention to UMT5 states, latents with frames."""
    config = {"image_model": "wan2.1", "model_type": "t2v", "dim": 64 * scale, "ffn_dim": 128 * scale,
              "num_heads": 2 * scale, "num_layers": scale, "in_dim": 16, "out_dim": 16, "text_dim": 48, "freq_dim": 32,
              "patch_size": (1, 2, 2), "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True,
              "eps": 1e-6}
    return in_memory_model(supported.WAN21_T2V, config, seed)


FAMILIES = {
    "sd3": Family("SD3.x (MMDiT)", tiny_sd3, (1, 16, 8, 8), 48, 32),
    "flux": Family("Flux architecture with CFG", tiny_flux, (1, 16, 8, 8), 48, 32),
    "chroma": Family("Chroma", tiny_chroma, (1, 16, 8, 8), 48),
    "qwen_image": Family("Qwen-Image (MMDiT)", tiny_qwen_image, (1, 16, 1, 8, 8), 48),
    "wan21": Family("Wan 2.1 text-to-video", tiny_wan21, (1, 16, 3, 8, 8), 48),
    "flux2": Family("Flux.2 (dev, Klein)", tiny_flux2, (1, 128, 4, 4), 48),
    "z_image": Family("Z-Image", tiny_z_image, (1, 16, 8, 8), 48),
}
