"""Attach an AttentionRecording to a clone of a MODEL through ComfyUI's documented hooks.

- on a UNet, an attn2 replace patch on every cross-attention block chosen (set_model_attn2_replace):
  returns exactly what ComfyUI's optimized attention returns (so the image is bit-identical)
  and hands q and k to the recording on the side; on a DiT, an attention override that does the
  same at every image-to-text attention call (dit_hooks.py);
- three wrappers (add_wrapper_with_key): SAMPLER_SAMPLE starts a run with the schedule and
  learns the sampler's step pattern (samplers/step_clock.py), PREDICT_NOISE attributes each
  model evaluation to its step, CALC_COND_BATCH tells which prompt each batch chunk holds;
- a pre-cfg function (set_model_sampler_pre_cfg_function) notes the cfg of each step, for the
  chart's guidance line; it returns the predictions unchanged.
"""

import torch
from comfy.ldm.modules.attention import SpatialTransformer, optimized_attention
from comfy.patcher_extension import WrappersMP

from ..samplers.step_clock import StepClock
from .dit_hooks import observe_dit_attention
from .dit_layout import FAMILIES, family_of
from .recording import AttentionRecording


WRAPPER_KEY = "delayed_negative.attention"
LAYER_CHOICES = ("all", "input blocks", "middle block", "output blocks")


def cross_attention_blocks(diffusion_model, layers: str = "all") -> list[tuple[str, int]]:
    """ComfyUI's names, ("input" | "middle" | "output", index), of the UNet blocks with cross-attention."""
    groups = block_groups(diffusion_model)
    wanted = {"all": groups.keys(), "input blocks": ["input"], "middle block": ["middle"],
              "output blocks": ["output"]}[layers]
    return [(name, index) for name in wanted for index, block in enumerate(groups[name])
            if any(isinstance(module, SpatialTransformer) for module in block.modules())]


def block_groups(diffusion_model) -> dict[str, list]:
    """A UNet's blocks by ComfyUI's group names (empty lists for a model that is no UNet)."""
    middle = getattr(diffusion_model, "middle_block", None)
    return {"input": getattr(diffusion_model, "input_blocks", None) or [],
            "middle": [middle] if isinstance(middle, torch.nn.Module) else [],
            "output": getattr(diffusion_model, "output_blocks", None) or []}


def cross_attention_module(diffusion_model, block: tuple[str, int], block_index: int):
    """The cross-attention (attn2) of transformer `block_index` in ComfyUI's block (group, number)."""
    group, number = block
    transformer = next(module for module in block_groups(diffusion_model)[group][number].modules()
                       if isinstance(module, SpatialTransformer))
    return transformer.transformer_blocks[block_index].attn2


def record_attention(model, recording: AttentionRecording, layers: str = "all"):
    """A clone of `model` that records into `recording`; the input model is left as it was."""
    patched = model.clone()
    attach_recording(patched, recording, layers)

    def sampler_sample(executor, guider, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                       *args, **kwargs):
        clock = StepClock.learn(executor.class_obj, guider, sigmas, noise, latent_image, denoise_mask,
                                extra_args.get("model_options"), extra_args.get("seed"))
        recording.learn_prompts(getattr(guider, "original_conds", {}))
        recording.begin_run(clock, sigmas, noise.shape)
        return executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, *args, **kwargs)

    def predict_noise(executor, x, timestep, model_options={}, seed=None):
        recording.begin_evaluation(float(timestep[0]))
        return executor(x, timestep, model_options, seed)

    def calc_cond_batch(executor, model, conds, x_in, timestep, model_options):
        recording.name_conds(conds)
        return executor(model, conds, x_in, timestep, model_options)

    def note_cfg(args):
        recording.note_cfg(args["cond_scale"])
        return args["conds_out"]

    patched.set_model_sampler_pre_cfg_function(note_cfg)
    patched.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY, sampler_sample)
    patched.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, WRAPPER_KEY, predict_noise)
    patched.add_wrapper_with_key(WrappersMP.CALC_COND_BATCH, WRAPPER_KEY, calc_cond_batch)
    return patched


def attach_recording(patched, recording: AttentionRecording, layers: str) -> None:
    """Hook the recording into a UNet's cross-attention blocks or a mapped DiT's text attention."""
    blocks = cross_attention_blocks(patched.get_model_object("diffusion_model"), layers)
    if blocks:
        observe_attention(patched, blocks, recording.add)
        return
    family = family_of(patched)
    if family is None:
        mapped = ", ".join(name for name, _joint in FAMILIES.values())
        raise ValueError(f"Attention maps do not cover this model ({type(patched.model).__name__}) yet: they work "
                         f"with SD1.x, SD2.x and SDXL UNets and with {mapped} DiT models.")
    if layers != "all":
        raise ValueError(f"{family[0]} is a DiT: it has no input, middle or output blocks. Set layers to 'all'.")
    observe_dit_attention(patched, recording.add_text_attention)


def observe_attention(patched, blocks: list[tuple[str, int]], observe) -> None:
    """On each block of the clone `patched`: an attn2 replace patch that returns the real attention
    output (another pack's patch, if one was there, else ComfyUI's optimized attention) and hands
    the call's q and k to `observe(q, k, heads, extra_options)` on the side."""
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})
    for block in blocks:
        patched.set_model_attn2_replace(observing_patch(observe, existing.get(block)), *block)


def observing_patch(observe, previous=None):
    def patch(q, k, v, extra_options):
        heads = extra_options["n_heads"]
        if previous is not None:
            out = previous(q, k, v, extra_options)
        else:
            out = optimized_attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"),
                                      transformer_options=extra_options)
        observe(q, k, heads, extra_options)
        return out

    return patch
