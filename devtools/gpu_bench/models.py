"""The models the GPU run samples, built from ComfyUI's own classes directly on the device.

Full size: the configurations ComfyUI's model detection (comfy/model_detection.py) gives the
released weights of SDXL 1.0 (2.57 B parameters), Flux.1 dev (11.9 B, with the guidance
embedding) and Wan 2.1 text-to-video 1.3B (1.42 B), in the dtypes ComfyUI loads them in on a GPU
(fp16, bf16, fp16). No weights can be downloaded, so every tensor is seeded random, drawn on the
device itself: a 12 B model is ready in seconds and never passes through the CPU. The
conditioning is random too, with the real text encoders' widths and token counts (SDXL: CLIP-L +
CLIP-G, 77 x 2048 and a pooled 1280; Flux: T5-XXL 512 x 4096 and CLIP-L's pooled 768; Wan:
UMT5-XXL 512 x 4096): these runs measure speed and memory, not pictures.

Tiny: the same classes at the tests' widths (devtools/models/tiny_models.py, tiny_dit_models.py),
run on the CPU by the test suite so that the GPU run cannot rot where no GPU is.
"""

import dataclasses
import zlib
from dataclasses import dataclass

import comfy.model_patcher
import comfy.supported_models as supported
import torch

from devtools.models.tiny_dit_models import flux_config

SIZES = ("full", "tiny")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the run: its ComfyUI class and configuration, its inputs and its sampling settings."""

    key: str
    name: str
    config_class: type
    unet_config: dict
    gpu_dtype: torch.dtype  # on the CPU everything runs in float32, as ComfyUI does there
    latent_shape: tuple[int, ...]
    picture: str  # what the latent stands for, in pixels (and frames)
    text_tokens: int
    text_width: int
    pooled_width: int | None
    steps: int
    cfg: float
    scheduler: str
    cond_extras: dict = dataclasses.field(default_factory=dict)

    def conditioning(self, generator: torch.Generator) -> list:
        """A random conditioning as CLIP Text Encode gives it (pooled_output None without a pooled vector)."""
        pooled = torch.randn(1, self.pooled_width, generator=generator) if self.pooled_width else None
        tokens = torch.randn(1, self.text_tokens, self.text_width, generator=generator)
        return [[tokens, {"pooled_output": pooled, **self.cond_extras}]]

    def empty_latent(self) -> dict:
        return {"samples": torch.zeros(self.latent_shape)}


# comfy/model_detection.py, unet_config_from_diffusers_unet: SDXL.
SDXL_UNET = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
             "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
             "context_dim": 2048, "num_head_channels": 64, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "use_temporal_attention": False, "use_temporal_resblock": False}
SDXL_TINY = dict(SDXL_UNET, model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2], transformer_depth=[0, 2],
                 transformer_depth_output=[0, 0, 2, 2], transformer_depth_middle=2, num_head_channels=16)

# comfy/model_detection.py, the Flux branch, with Flux dev's double (19) and single (38) blocks and guidance embedding.
FLUX_DEV = dict(flux_config(guidance_embed=True), hidden_size=3072, num_heads=24, axes_dim=[16, 56, 56], mlp_ratio=4.0,
                depth=19, depth_single_blocks=38, context_in_dim=4096, vec_in_dim=768)
FLUX_TINY = flux_config(guidance_embed=True)

# comfy/model_detection.py, the Wan 2.1 branch, for the 1.3B text-to-video weights.
WAN21_1_3B = {"image_model": "wan2.1", "model_type": "t2v", "dim": 1536, "ffn_dim": 8960, "num_heads": 12,
              "num_layers": 30, "in_dim": 16, "out_dim": 16, "text_dim": 4096, "freq_dim": 256, "patch_size": (1, 2, 2),
              "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6}
WAN21_TINY = dict(WAN21_1_3B, dim=64, ffn_dim=128, num_heads=2, num_layers=1, text_dim=48, freq_dim=32)

FULL = [
    ModelSpec("sdxl", "SDXL 1.0 (UNet)", supported.SDXL, SDXL_UNET, torch.float16, (1, 4, 128, 128), "1024x1024",
              77, 2048, 1280, steps=20, cfg=7.0, scheduler="normal"),
    # Wan before Flux: the run's time is shared out in this order, and Flux takes what the others leave.
    ModelSpec("wan21", "Wan 2.1 text-to-video 1.3B", supported.WAN21_T2V, WAN21_1_3B, torch.float16,
              (1, 16, 9, 60, 104), "832x480, 33 frames", 512, 4096, None, steps=10, cfg=5.0, scheduler="simple"),
    ModelSpec("flux_dev", "Flux.1 dev (guidance embedding)", supported.Flux, FLUX_DEV, torch.bfloat16,
              (1, 16, 128, 128), "1024x1024", 512, 4096, 768, steps=20, cfg=1.0, scheduler="simple",
              cond_extras={"guidance": 3.5}),
]
TINY = [
    dataclasses.replace(FULL[0], unet_config=SDXL_TINY, latent_shape=(1, 4, 8, 8), picture="64x64", text_tokens=12,
                        steps=4),
    dataclasses.replace(FULL[1], unet_config=WAN21_TINY, latent_shape=(1, 16, 3, 8, 8), picture="64x64, 9 frames",
                        text_tokens=12, text_width=48, steps=4),
    dataclasses.replace(FULL[2], unet_config=FLUX_TINY, latent_shape=(1, 16, 8, 8), picture="64x64", text_tokens=12,
                        text_width=FLUX_TINY["context_in_dim"], pooled_width=FLUX_TINY["vec_in_dim"], steps=4),
]


def specs(size: str) -> list[ModelSpec]:
    return {"full": FULL, "tiny": TINY}[size]


def seed_weights_(module: torch.nn.Module, seed: int, std: float = 0.02) -> None:
    """Fill every tensor where it lies: matrices ~ N(0, std²), norm weights 1, biases 0.

    The rule of devtools/models/tiny_models.py seeded_ (ComfyUI's ops leave tensors empty, and an
    unfilled one can be NaN), drawn on the tensor's own device: each tensor's generator is seeded
    from its name, so the values do not depend on the order of the keys.
    """
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            if tensor.ndim >= 2:
                generator = None
                if tensor.device.type != "meta":
                    generator = torch.Generator(device=tensor.device).manual_seed(seed ^ zlib.crc32(name.encode()))
                tensor.normal_(0.0, std, generator=generator)
            elif name.endswith("bias"):
                tensor.zero_()
            else:
                tensor.fill_(1.0)


def build(spec: ModelSpec, device: torch.device, seed: int = 1234) -> comfy.model_patcher.ModelPatcher:
    """The model built on `device`, wrapped as ComfyUI's loaders wrap one: loaded where it was built."""
    model_config = spec.config_class(dict(spec.unet_config))
    model_config.set_inference_dtype(spec.gpu_dtype if device.type == "cuda" else torch.float32, None)
    model = model_config.get_model({}, "", device=device)
    seed_weights_(model.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def parameter_count(model) -> int:
    return sum(parameter.numel() for parameter in model.get_model_object("diffusion_model").parameters())


def weight_bytes(model) -> int:
    diffusion_model = model.get_model_object("diffusion_model")
    return sum(tensor.numel() * tensor.element_size() for tensor in diffusion_model.state_dict().values())
