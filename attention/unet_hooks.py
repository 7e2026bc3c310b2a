"""Show every cross-attention call of a UNet to an observer, whatever else patches it.

ComfyUI calls an attn2 replace patch in place of a transformer block's cross-attention; it looks
the patch up under `(block, number, transformer_index)` first and `(block, number)` second
(comfy/ldm/modules/attention.py). Other packs patch the same point: IPAdapter under the 3-part
key on SDXL, others under the 2-part key, before or after our node in the graph. A patch set
when the node runs would be shadowed by a 3-part key set before it, or replaced by one set after
it, and the maps would come back empty without a word.

So nothing is set on the model's options: an APPLY_MODEL wrapper (add_wrapper_with_key) adds,
at every evaluation, to a copy of the `transformer_options` ComfyUI is about to run with, a
3-part patch on each layer that calls exactly the patch ComfyUI would have called (the
other pack's, at either key form, else the layer's own attention, see layer_attention) and shows
the call's q and k to the observer (or, for NAG, guides its output: samplers/nag_model.py). The other pack's patch keeps working and the image stays
bit-identical, whatever the order of the nodes.

Where the layer's own attention runs and ComfyUI's attention is its PyTorch attention (the default
on NVIDIA GPUs), the call goes through the kernel that also gives each query's log-sum-exp
(kernel_lse.py, the image still ComfyUI's bit for bit): a word's share then costs only the products
of the queries with its own columns, not a softmax over the whole prompt.
"""

import comfy.ldm.modules.attention
import torch
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.patcher_extension import WrappersMP

from .kernel_lse import KernelLSE

OVERRIDE = "optimized_attention_override"  # the slot ComfyUI's attention functions hand each call to

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


def spatial_transformer(diffusion_model, block: tuple[str, int]):
    group, number = block
    return next(module for module in block_groups(diffusion_model)[group][number].modules()
                if isinstance(module, SpatialTransformer))


def cross_attention_module(diffusion_model, block: tuple[str, int], block_index: int):
    """The cross-attention (attn2) of transformer `block_index` in ComfyUI's block (group, number)."""
    return spatial_transformer(diffusion_model, block).transformer_blocks[block_index].attn2


def cross_attention_layers(diffusion_model, blocks: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """The 3-part keys, (group, number, transformer_index), of every transformer in `blocks`."""
    return [(*block, index) for block in blocks
            for index in range(len(spatial_transformer(diffusion_model, block).transformer_blocks))]


def observe_unet_attention(patched, blocks: list[tuple[str, int]], observe, key: str) -> None:
    """On the clone `patched`, call `observe(q, k, heads, extra_options, lse)` at every cross-attention
    call of `blocks`, through an APPLY_MODEL wrapper named `key` (see the module docstring); `lse` is
    the kernel's log-sum-exp [batch, heads, queries], or None where the call could not give it."""
    kernel = KernelLSE()
    patch_unet_cross_attention(patched, blocks, lambda attend: observing_patch(observe, attend, kernel), key)


def patch_unet_cross_attention(patched, blocks: list[tuple[str, int]], make_patch, key: str) -> None:
    """On the clone `patched`, put `make_patch(attend)` in place of every cross-attention call of
    `blocks` at each evaluation, through an APPLY_MODEL wrapper named `key`; `attend(q, k, v,
    extra_options)` is what ComfyUI would have called there (another pack's patch, at either key
    form, else the layer's own attention)."""
    diffusion_model = patched.get_model_object("diffusion_model")
    layers = {layer: cross_attention_module(diffusion_model, layer[:2], layer[2])
              for layer in cross_attention_layers(diffusion_model, blocks)}

    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},
                    **kwargs):
        options = with_layer_patches(transformer_options, layers, make_patch)
        return executor(x, t, c_concat, c_crossattn, control, options, **kwargs)

    patched.add_wrapper_with_key(WrappersMP.APPLY_MODEL, key, apply_model)


def with_layer_patches(options: dict, layers: dict, make_patch) -> dict:
    """A copy of `options` whose attn2 patches on `layers` ({3-part key: the layer's attn2
    module}) are `make_patch(attend)`, `attend` being the patch that was there (3-part key first,
    then 2-part) or the layer's own attention; `options` and the patch dictionaries in it are left
    as they were."""
    replace = options.get("patches_replace", {})
    attn2 = dict(replace.get("attn2", {}))
    for (group, number, index), layer in layers.items():
        previous = attn2.get((group, number, index), attn2.get((group, number)))
        attn2[(group, number, index)] = make_patch(previous or own_attention(layer))
    return {**options, "patches_replace": {**replace, "attn2": attn2}}


def own_attention(layer):
    """The layer's own attention as an attn2 patch: (q, k, v, extra_options) -> output."""
    def attend(q, k, v, extra_options):
        return layer_attention(q, k, v, extra_options, layer)

    attend.layer = layer
    return attend


def observing_patch(observe, attend, kernel: KernelLSE | None = None):
    """An attn2 patch returning what `attend` returns, and showing q and k to `observe(q, k, heads,
    extra_options, lse)` on the side; with a `kernel`, the layer's own attention gives the LSE where
    it can (see the module docstring)."""
    def patch(q, k, v, extra_options):
        heads = extra_options["n_heads"]
        if kernel is None or not runs_own_attention(attend, extra_options):
            out = attend(q, k, v, extra_options)
            observe(q, k, heads, extra_options, None)
            return out
        found = []

        def through_kernel(func, *args, **kwargs):
            out, lse = kernel.attention(func, args, kwargs)
            found.append(lse)
            return out

        out = attend(q, k, v, {**extra_options, OVERRIDE: through_kernel})
        observe(q, k, heads, extra_options, found[0] if len(found) == 1 else None)
        return out

    return patch


def runs_own_attention(attend, extra_options: dict) -> bool:
    """Whether `attend` is the layer's own attention through ComfyUI's function: no other pack's
    attn2 patch or override (those run as they are), and no attention module of the layer's own
    (after 0.33 a layer may hold one, which an override would replace)."""
    layer = getattr(attend, "layer", None)
    return layer is not None and getattr(layer, "comfy_attention", None) is None and OVERRIDE not in extra_options


def layer_attention(q, k, v, extra_options: dict, layer=None):
    """What the layer's own CrossAttention.forward computes from q, k and v.

    ComfyUI's optimized attention is read at call time, as CrossAttention reads it (a pack that
    swaps the function swaps it for the patched layers too). After 0.33 a CrossAttention holds
    its own attention module (`comfy_attention`, whose function a checkpoint's metadata may set,
    e.g. int8 attention), hands it over as `preferred_attention` and wraps q, k and v in
    AttentionTensorContainers; a patch gets neither, so where the layer holds one this does the
    same. The observer keeps its own references to q and k: a container only lets go of them.
    """
    keywords = {"attn_precision": extra_options.get("attn_precision"), "transformer_options": extra_options}
    preferred = getattr(layer, "comfy_attention", None)
    container = getattr(comfy.ldm.modules.attention, "AttentionTensorContainer", None)
    if preferred is not None:
        keywords["preferred_attention"] = preferred
        if container is not None:
            q, k, v = container(q), container(k), container(v)
    return comfy.ldm.modules.attention.optimized_attention(q, k, v, extra_options["n_heads"], **keywords)
