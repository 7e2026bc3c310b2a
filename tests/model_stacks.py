"""What ComfyUI users put between the loader and the sampler, built with ComfyUI's own nodes.

A Stack turns a Setup (the model, the prompts, the latent, as they leave the loaders) into the
Setup the sampler receives: a model patch (APG, PAG, FreeU, a cache, an attention backend), a
LoRA, hooked conditionings, a ControlNet on the prompts, or another pack's attention patch.
The compatibility tests run the delayed negative and ComfyUI's stock samplers on the same
stacked Setup; the attention recorder's tests can reuse the same list.

Every stack is built by the stock node a user would place (called the way ComfyUI calls it),
from files generated here (a LoRA and a ControlNet for the tiny SD1.5 UNet of
devtools/models/tiny_models.py), so nothing is mocked. A stack whose node a ComfyUI release lacks
says so (Stack.absent_on_this_host), for the tests to skip it with that reason.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import safetensors.torch
import torch

import comfy.cldm.cldm
import comfy.ldm.modules.attention
import comfy.ops
import folder_paths
import nodes
from comfy_extras import (nodes_apg, nodes_cfg, nodes_differential_diffusion, nodes_easycache, nodes_freelunch,
                          nodes_hooks, nodes_model_advanced, nodes_pag, nodes_sag)
from devtools.models.tiny_models import SD15_CHECKPOINT_UNET, seeded_

try:  # ComfyUI 0.33 and later
    from comfy_extras import nodes_nag
except ImportError:
    nodes_nag = None

LORA_NAME = "delayed-negative-test-tiny-sd15-lora.safetensors"
CONTROLNET_NAME = "delayed-negative-test-tiny-sd15-controlnet.safetensors"


@dataclass(frozen=True)
class Setup:
    """What reaches the sampler. `empty` is the unconditional conditioning before the negative starts:
    given as early conditioning, or, where `clip` is set, encoded by the pack itself ('empty prompt')."""

    model: object
    positive: list
    negative: list
    empty: list
    latent: dict
    clip: object = None


@dataclass(frozen=True)
class Assets:
    """What the stacks load: files registered with ComfyUI's folder_paths, the checkpoint's CLIP."""

    lora_name: str
    controlnet_name: str
    clip: object
    hint: torch.Tensor  # the ControlNet's input image, [1, H, W, 3]


@dataclass(frozen=True)
class Stack:
    """One column of the compatibility matrix.

    `prepare` makes the part of the Setup that is not the stack's own (a masked latent, prompts
    encoded by a CLIP), so that "the stack changes the stock result" compares like with like.
    `state` says what the stack carries from one step to the next (or reads of the whole run),
    empty when nothing: then two stock KSamplerAdvanced passes split at the start are a reference.
    With state, `two_passes_differ` says whether they are still one (and `state` says why).
    """

    name: str
    patch: Callable[[Setup, Assets], Setup]
    prepare: Callable[[Setup, Assets], Setup] = lambda setup, assets: setup
    state: str = ""
    two_passes_differ: bool = False
    node: tuple = ()  # (module, attribute) of a node only some ComfyUI releases have

    def absent_on_this_host(self) -> bool:
        if not self.node:
            return False
        module, attribute = self.node
        return module is None or not hasattr(module, attribute)


def first_output(node_class, *args, **kwargs):
    """The first output of a stock node, whether it is a V1 node (FUNCTION) or a V3 one (execute)."""
    if hasattr(node_class, "define_schema"):
        return node_class.execute(*args, **kwargs).result[0]
    return getattr(node_class(), node_class.FUNCTION)(*args, **kwargs)[0]


def with_model(patch_model: Callable) -> Callable[[Setup, Assets], Setup]:
    return lambda setup, assets: replace(setup, model=patch_model(setup.model))


# Files ---------------------------------------------------------------------------------------------------

def tiny_lora(model, rank: int = 4, seed: int = 5, std: float = 0.05) -> dict:
    """A kohya-format LoRA on every attention projection of the model's UNet, so that its keys
    (lora_unet_<path>.lora_up / lora_down / alpha) are the ones ComfyUI maps to that UNet."""
    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for key, weight in model.model.state_dict().items():
        if not (key.startswith("diffusion_model.") and ".attn" in key and key.endswith(".weight")):
            continue
        name = "lora_unet_" + key[len("diffusion_model."):-len(".weight")].replace(".", "_")
        out_features, in_features = weight.shape[:2]
        lora[f"{name}.lora_down.weight"] = torch.randn(rank, in_features, generator=generator) * std
        lora[f"{name}.lora_up.weight"] = torch.randn(out_features, rank, generator=generator) * std
        lora[f"{name}.alpha"] = torch.tensor(float(rank))
    return lora


def tiny_controlnet(seed: int = 77) -> dict:
    """An SD1.5-layout ControlNet for the tiny UNet, from ComfyUI's own comfy.cldm class.

    Its first level has no transformer: ComfyUI detects a ControlNet it does not recognise as a
    base model with 64-channel heads, and the tiny UNet's first level is only 32 channels wide.
    The outputs (one per input block and the middle) match the tiny UNet's channels either way.
    Zero convolutions are random, not zero as after initialisation, so the control really acts.
    """
    config = dict(SD15_CHECKPOINT_UNET, model_channels=32, hint_channels=3, transformer_depth=[0, 1],
                  num_heads=-1, num_head_channels=64)
    for unused in ("out_channels", "transformer_depth_output"):
        config.pop(unused)
    net = comfy.cldm.cldm.ControlNet(**config, operations=comfy.ops.disable_weight_init, dtype=torch.float32,
                                     device="cpu")
    return seeded_(net.state_dict(), seed, 0.02)


def write_assets(folder: Path, model, clip) -> Assets:
    """Write the LoRA and the ControlNet into `folder` and register it where ComfyUI's loaders look."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, state_dict, kind in ((LORA_NAME, tiny_lora(model), "loras"),
                                   (CONTROLNET_NAME, tiny_controlnet(), "controlnet")):
        safetensors.torch.save_file({key: value.contiguous() for key, value in state_dict.items()},
                                    str(folder / name))
        folder_paths.add_model_folder_path(kind, str(folder))
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(6))
    return Assets(LORA_NAME, CONTROLNET_NAME, clip, hint)


# Prompts and latents the stacks start from ---------------------------------------------------------------

PROMPTS = {"positive": "portrait photo of a man", "negative": "mustache", "empty": ""}


def clip_prompts(setup: Setup, assets: Assets, clip=None) -> Setup:
    """The prompts encoded by a CLIP (the checkpoint's unless given); the pack encodes the empty one."""
    clip = clip or assets.clip
    encoded = {name: nodes.CLIPTextEncode().encode(clip, text)[0] for name, text in PROMPTS.items()}
    return replace(setup, clip=clip, **encoded)


def masked_latent(setup: Setup, assets: Assets) -> Setup:
    """An inpainting latent: a left-to-right ramp as noise mask, what Differential Diffusion reads."""
    height, width = (side * 8 for side in setup.latent["samples"].shape[-2:])
    ramp = torch.linspace(0.0, 1.0, width).expand(1, height, width).clone()
    return replace(setup, latent=nodes.SetLatentNoiseMask().set_mask(setup.latent, ramp)[0])


# Patches of other packs, written the way they install themselves ---------------------------------------------

def scaled_per_row(out, cond_or_uncond, cond_scale=1.03, uncond_scale=0.98):
    """Scale each row of an attention output by whether it is a cond or an uncond row, as IPAdapter
    weighs its image tokens differently for the two; a wrong cond_or_uncond shows in the result."""
    scales = torch.tensor([cond_scale if which == 0 else uncond_scale for which in cond_or_uncond])
    return out * scales.to(out).repeat_interleave(out.shape[0] // len(cond_or_uncond)).view(-1, 1, 1)


def ipadapter_like(q, k, v, extra_options):
    out = comfy.ldm.modules.attention.optimized_attention(q, k, v, extra_options["n_heads"])
    return scaled_per_row(out, extra_options["cond_or_uncond"])


def attn2_replace(transformer_index=None):
    def patch(model):
        patched = model.clone()
        patched.set_model_attn2_replace(ipadapter_like, "input", 1, transformer_index=transformer_index)
        return patched
    return patch


def attention_override(model):
    """A clone whose every optimized attention call goes through an override that nudges its result."""
    patched = model.clone()

    def override(func, *args, **kwargs):
        return func(*args, **kwargs) * 1.02

    options = patched.model_options.setdefault("transformer_options", {})
    options["optimized_attention_override"] = override
    return patched


# Hooks and ControlNets ---------------------------------------------------------------------------------

def hooked_positive(setup: Setup, assets: Assets) -> Setup:
    """A LoRA hook on the positive prompt only (Create Hook LoRA (MO) + Cond Set Props): sampling
    takes ComfyUI's hooked-conds path, with other weights for the positive than for the rest."""
    hooks = nodes_hooks.CreateHookLoraModelOnly().create_hook_model_only(assets.lora_name, 1.0)[0]
    positive = nodes_hooks.ConditioningSetProperties().set_properties(setup.positive, 1.0, "default",
                                                                      hooks=hooks)[0]
    return replace(setup, positive=positive)


def hooked_clip(setup: Setup, assets: Assets) -> Setup:
    """A LoRA hook on the CLIP (Create Hook LoRA + Set CLIP Hooks): every prompt it encodes, the
    pack's own empty prompt included, carries the hook."""
    hooks = nodes_hooks.CreateHookLora().create_hook(assets.lora_name, 1.0, 1.0)[0]
    clip = nodes_hooks.SetClipHooks().apply_hooks(assets.clip, schedule_clip=False, apply_to_conds=True,
                                                  hooks=hooks)[0]
    return clip_prompts(setup, assets, clip)


def lora_loader(setup: Setup, assets: Assets) -> Setup:
    """The stock Load LoRA on model and CLIP; the prompts are encoded by the CLIP it returns."""
    model, clip = nodes.LoraLoader().load_lora(setup.model, assets.clip, assets.lora_name, 1.0, 1.0)
    return replace(clip_prompts(setup, assets, clip), model=model)


def controlnet(setup: Setup, assets: Assets) -> Setup:
    """Load ControlNet Model + Apply ControlNet (advanced) on the prompts, the empty one too (as a
    user does for a first KSamplerAdvanced pass with the empty prompt as negative)."""
    control_net = nodes.ControlNetLoader().load_controlnet(assets.controlnet_name)[0]
    apply = nodes.ControlNetApplyAdvanced().apply_controlnet
    positive, negative = apply(setup.positive, setup.negative, control_net, assets.hint, 0.5, 0.0, 1.0)[:2]
    empty = apply(setup.positive, setup.empty, control_net, assets.hint, 0.5, 0.0, 1.0)[1]
    return replace(setup, positive=positive, negative=negative, empty=empty)


# The matrix --------------------------------------------------------------------------------------------

STACKS = [
    Stack("RescaleCFG", with_model(lambda model: first_output(nodes_model_advanced.RescaleCFG, model, 0.7))),
    Stack("CFGZeroStar", with_model(lambda model: first_output(nodes_cfg.CFGZeroStar, model)),
          node=(nodes_cfg, "CFGZeroStar")),
    Stack("APG", with_model(lambda model: first_output(nodes_apg.APG, model, 0.5, 2.0, 0.5)),
          state="APG keeps a running average of the guidance (momentum 0.5) and resets it only when sigma rises, so "
                "two passes on the one APG model carry it over the split like one run"),
    Stack("PerturbedAttentionGuidance",
          with_model(lambda model: first_output(nodes_pag.PerturbedAttentionGuidance, model, 2.0))),
    # Keeps the attention of a step's unconditional evaluation for that step's post-cfg function only.
    Stack("SelfAttentionGuidance",
          with_model(lambda model: first_output(nodes_sag.SelfAttentionGuidance, model, 0.5, 2.0))),
    Stack("FreeU_V2", with_model(lambda model: first_output(nodes_freelunch.FreeU_V2, model, 1.3, 1.4, 0.9, 0.2))),
    Stack("DifferentialDiffusion",
          with_model(lambda model: first_output(nodes_differential_diffusion.DifferentialDiffusion, model)),
          prepare=masked_latent, two_passes_differ=True,
          state="Differential Diffusion turns the mask into a threshold per step from the run's whole sigma range "
                "(sample_sigmas); a second KSamplerAdvanced pass has only its own sigmas, so its thresholds differ"),
    Stack("NAGuidance", with_model(lambda model: first_output(nodes_nag.NAGuidance, model, 5.0, 0.5, 1.5)),
          node=(nodes_nag, "NAGuidance")),
    Stack("EasyCache",
          with_model(lambda model: first_output(nodes_easycache.EasyCacheNode, model, 1.0, 0.0, 0.95, False)),
          state="EasyCache keeps the last input and output to decide which steps to skip. It skips the step before "
                "the switch in both (one run and the first pass are the same up to there) and none after it in "
                "either: in one run it keys its decisions on the first step's first cond, the unconditional one "
                "(ComfyUI batches it first), which is gone from the switch on; a fresh second pass of 3 steps "
                "needs 2 to learn and its last is past end_percent"),
    Stack("LazyCache",
          with_model(lambda model: first_output(nodes_easycache.LazyCacheNode, model, 0.5, 0.0, 0.95, False)),
          two_passes_differ=True,
          state="LazyCache keeps the last input and output to skip evaluations; a second KSamplerAdvanced pass "
                "starts with an empty cache, so it evaluates where one run reuses"),
    Stack("ModelAttentionBackend",
          with_model(lambda model: first_output(nodes_model_advanced.ModelAttentionBackend, model,
                                                "pytorch attention")),
          node=(nodes_model_advanced, "ModelAttentionBackend")),
    Stack("LoraLoaderModelOnly", lambda setup, assets: replace(setup, model=first_output(
        nodes.LoraLoaderModelOnly, setup.model, assets.lora_name, 1.0))),
    Stack("LoraLoader", lora_loader, prepare=clip_prompts),
    Stack("hooks on the positive (CreateHookLoraModelOnly, ConditioningSetProperties)", hooked_positive),
    Stack("hooks on the CLIP (CreateHookLora, SetClipHooks)", hooked_clip, prepare=clip_prompts),
    Stack("ControlNetApplyAdvanced", controlnet),
    Stack("attn2 replace (input, 1)", with_model(attn2_replace())),
    Stack("attn2 replace (input, 1, 0)", with_model(attn2_replace(transformer_index=0))),
    Stack("optimized_attention_override", with_model(attention_override)),
]
