"""Seeded, reduced-size Stable Diffusion models built from ComfyUI's own classes.

No hub is reachable and no package ships Stable Diffusion weights, so the tests and the demo
use models made here: real architectures, random but seeded weights, so every run of the
set-up writes the same bytes. Needs the `comfy` package importable (see tests/conftest.py).
"""

import json
import zlib
from pathlib import Path

import torch

import comfy.clip_model
import comfy.ldm.models.autoencoder
import comfy.ldm.modules.diffusionmodules.openaimodel as openaimodel
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.supported_models

# Detected by ComfyUI's checkpoint loader as SD1.5 (supported_models.SD15 pins only the
# context width, the base channel count and the non-linear transformer projections).
SD15_CHECKPOINT_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1, 1],
    channel_mult=[1, 2], transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1],
    transformer_depth_middle=1, context_dim=768, num_heads=8, num_head_channels=-1,
    use_linear_in_transformer=False, adm_in_channels=None, use_spatial_transformer=True,
    legacy=False, use_temporal_attention=False,
)
SD_VAE = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128,
              ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0)


def seeded_(state_dict: dict, seed: int, std: float = 0.02) -> dict:
    """Fill every tensor in place: matrices ~ N(0, std²) (0.02 by default), norm weights 1, biases 0.

    ComfyUI's ops allocate empty (uninitialised) tensors, so nothing may be left unfilled:
    an uninitialised VAE decodes to NaN. Each tensor's generator is seeded from its name,
    so the values do not depend on the order the keys come in.
    """
    for name, tensor in state_dict.items():
        tensor = tensor.detach()
        if not tensor.is_floating_point():
            continue
        generator = torch.Generator().manual_seed(seed ^ zlib.crc32(name.encode()))
        if tensor.ndim >= 2:
            values = torch.randn(tensor.shape, generator=generator) * std
        elif name.endswith("bias"):
            values = torch.zeros(tensor.shape)
        else:
            values = torch.ones(tensor.shape)
        tensor.copy_(values.to(tensor.dtype))
    return state_dict


def sd15_checkpoint(seed: int = 1234, dtype=torch.float16) -> dict:
    """The full state dict of an SD1.5-architecture checkpoint (reduced-depth UNet)."""
    ops = comfy.ops.disable_weight_init
    unet = openaimodel.UNetModel(**SD15_CHECKPOINT_UNET, operations=ops, device="cpu", dtype=dtype)
    clip_config = json.loads((Path(comfy.clip_model.__file__).parent / "sd1_clip_config.json").read_text())
    clip = comfy.clip_model.CLIPTextModel(clip_config, dtype, "cpu", ops)
    vae = comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=SD_VAE, embed_dim=4).to(dtype)
    parts = {"model.diffusion_model.": unet, "cond_stage_model.transformer.": clip, "first_stage_model.": vae}
    state_dict = {prefix + key: value for prefix, module in parts.items()
                  for key, value in module.state_dict().items()}
    return seeded_(state_dict, seed)


def in_memory_model(model_config_class, unet_config: dict, seed: int = 1234,
                    std: float = 0.02) -> comfy.model_patcher.ModelPatcher:
    """A small UNet of any SD-family architecture, built in memory and wrapped like a loaded model.

    Reduced sizes cannot go through the checkpoint loader's detection (it recognises models by
    their full shapes), so the tests build SDXL-architecture and tiny models this way.
    """
    model_config = model_config_class(dict(unet_config))
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, "")
    seeded_(model.diffusion_model.state_dict(keep_vars=True), seed, std)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def tiny_sd15(seed: int = 1234) -> comfy.model_patcher.ModelPatcher:
    """SD1.5 architecture at a tenth of the width: fast enough to run every sampler in a test."""
    config = dict(SD15_CHECKPOINT_UNET, model_channels=32)
    return in_memory_model(comfy.supported_models.SD15, config, seed)


def tiny_sdxl(seed: int = 1234) -> comfy.model_patcher.ModelPatcher:
    """SDXL architecture (two text encoders' width, pooled-output ADM input, deeper transformers)."""
    config = dict(
        image_size=32, in_channels=4, out_channels=4, model_channels=32, num_res_blocks=[1, 1],
        channel_mult=[1, 2], transformer_depth=[0, 2], transformer_depth_output=[0, 0, 2, 2],
        transformer_depth_middle=2, context_dim=2048, num_head_channels=16,
        use_linear_in_transformer=True, adm_in_channels=2816, num_classes="sequential", use_spatial_transformer=True,
        legacy=False, use_temporal_attention=False,
    )
    return in_memory_model(comfy.supported_models.SDXL, config, seed)


# SD3 (MMDiT) at 2 blocks of 128 wide, with the real text widths: the CLIP-L features padded to
# T5's 4096 and the pooled CLIP-L + CLIP-G vector of 2048, so ComfyUI's stock SD3 text encoder
# feeds it. Detected by the checkpoint loader from these shapes.
SD3_CHECKPOINT_MMDIT = {"in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 2, "input_size": None,
                        "adm_in_channels": 2048, "num_patches": 4096, "pos_embed_max_size": 64,
                        "pos_embed_scaling_factor": None,
                        "context_embedder_config": {"target": "torch.nn.Linear",
                                                    "params": {"in_features": 4096, "out_features": 128}}}


def sd3_checkpoint(seed: int = 1234, dtype=torch.float16) -> dict:
    """An SD3-architecture checkpoint as ComfyUI's SD3.5 files are laid out: the MMDiT (2 blocks), its
    CLIP-L text encoder (full size: ComfyUI fixes its config; no CLIP-G, no T5, as with CLIPLoader's sd3
    type) and a TAESD3 VAE (16 latent channels)."""
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper
    from comfy.taesd.taesd import TAESD

    ops = comfy.ops.disable_weight_init
    mmdit = OpenAISignatureMMDITWrapper(**SD3_CHECKPOINT_MMDIT, dtype=dtype, device="cpu", operations=ops)
    clip_config = json.loads((Path(comfy.clip_model.__file__).parent / "sd1_clip_config.json").read_text())
    clip = comfy.clip_model.CLIPTextModel(clip_config, dtype, "cpu", ops)
    vae = TAESD(latent_channels=16).to(dtype)
    parts = {"model.diffusion_model.": mmdit, "text_encoders.clip_l.transformer.": clip, "first_stage_model.": vae}
    state_dict = {prefix + key: value for prefix, module in parts.items()
                  for key, value in module.state_dict().items()}
    return seeded_(state_dict, seed)
