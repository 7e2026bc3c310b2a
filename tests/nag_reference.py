"""NAG written out from ComfyUI's hooks, independently of the pack: the tests' reference.

On a UNet the reference evaluates the positive prompt alone (stock sampling at cfg 1) and, in
every cross-attention layer, computes the negative's attention itself from the same queries:
the negative's keys and values through the layer's own to_k / to_v, ComfyUI's attention
function, then the NAG paper's formula (arXiv 2505.21179, eq. 6-8) on the layer's attention
output, before its output projection. That is the definition the pack claims for UNets; the
pack gets there another way (the negative in the batch, both branches given the guided output).
"""

import comfy.ldm.modules.attention
import torch

from delayed_negative.attention.unet_hooks import cross_attention_blocks, cross_attention_layers, \
    cross_attention_module


def nag_formula(z_positive, z_negative, scale, tau, alpha):
    guided = z_positive * scale - z_negative * (scale - 1.0)
    norm_positive = z_positive.abs().sum(dim=-1, keepdim=True).clamp_min(1e-6)
    norm_guided = guided.abs().sum(dim=-1, keepdim=True).clamp_min(1e-6)
    ratio = norm_guided / norm_positive
    guided = torch.where(ratio > tau, guided * (tau / ratio), guided)
    return alpha * guided + (1.0 - alpha) * z_positive


def unet_with_reference_nag(model, negative_context, scale, tau, alpha, from_sigma=float("inf")):
    """A clone of the UNet `model` whose cross-attention is NAG-guided by `negative_context`
    ([1, tokens, width]) at every evaluation whose sigma is at or below `from_sigma`."""
    patched = model.clone()
    diffusion_model = patched.get_model_object("diffusion_model")
    for group, number, index in cross_attention_layers(diffusion_model, cross_attention_blocks(diffusion_model)):
        layer = cross_attention_module(diffusion_model, (group, number), index)

        def patch(q, k, v, extra_options, layer=layer):
            heads = extra_options["n_heads"]
            attention = comfy.ldm.modules.attention.optimized_attention
            z_positive = attention(q, k, v, heads)
            if float(extra_options["sigmas"][0]) > from_sigma * (1 + 1e-6):
                return z_positive
            context = negative_context.to(q).expand(q.shape[0], -1, -1)
            z_negative = attention(q, layer.to_k(context), layer.to_v(context), heads)
            return nag_formula(z_positive, z_negative, scale, tau, alpha)

        patched.set_model_attn2_replace(patch, group, number, index)
    return patched
