"""The references' view of a UNet's cross-attention: forward hooks on the modules themselves.

Each cross-attention's to_q and to_k are hooked (not the pack's patch), so a reference reads the
queries and keys the model really computed, and can project a prompt of its own through the
same to_k.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


class CrossAttentionCall(NamedTuple):
    group: str  # "input", "middle" or "output"
    q: torch.Tensor  # [rows, pixels, heads * dim]
    k: torch.Tensor  # [rows, tokens, heads * dim]
    heads: int
    to_k: torch.nn.Module  # the layer's key projection


def hook_cross_attention(model):
    """Forward hooks on each cross-attention's to_q and to_k; every call appends a CrossAttentionCall."""
    diffusion_model = model.get_model_object("diffusion_model")
    groups = {"input": list(diffusion_model.input_blocks), "middle": [diffusion_model.middle_block],
              "output": list(diffusion_model.output_blocks)}
    calls, handles = [], []
    for group, blocks in groups.items():
        for block in blocks:
            for module in block.modules():
                if not hasattr(module, "attn2"):
                    continue
                pending = {}
                attention = module.attn2
                handles.append(attention.to_q.register_forward_hook(
                    lambda _m, _i, out, pending=pending: pending.__setitem__("q", out.detach().clone())))
                handles.append(attention.to_k.register_forward_hook(
                    lambda _m, _i, out, pending=pending, group=group, attention=attention: record(
                        calls, pending, group, out, attention)))
    return calls, handles


def record(calls, pending, group, k, attention):
    """A call's keys follow its queries; a to_k without them (the automatic start projecting the
    negative prompt itself) is no attention call."""
    if "q" in pending:
        calls.append(CrossAttentionCall(group, pending.pop("q"), k.detach().clone(), attention.heads, attention.to_k))


def word_probability(q, k, heads, columns):
    """[batch, pixels]: softmax(q·kᵀ/√d) written out per head, the word's columns summed, heads averaged."""
    dim = q.shape[-1] // heads
    total = 0
    for head in range(heads):
        q_head = q[..., head * dim:(head + 1) * dim].double()
        k_head = k[..., head * dim:(head + 1) * dim].double()
        scores = q_head @ k_head.transpose(-1, -2) / math.sqrt(dim)
        probabilities = torch.exp(scores - scores.amax(-1, keepdim=True))
        probabilities = probabilities / probabilities.sum(-1, keepdim=True)
        total = total + probabilities[..., columns].sum(-1)
    return total / heads


def at_latent_size(probability, height, width):
    """A layer's [batch, pixels] as [batch, height, width]: its own grid is the latent's divided by a
    power of two, rows of `width // factor` pixels; brought up bilinearly (align_corners=False)."""
    factor = math.isqrt(height * width // probability.shape[-1])
    assert (height // factor) * (width // factor) == probability.shape[-1]
    grid = probability.reshape(-1, 1, height // factor, width // factor)
    if factor > 1:
        grid = F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
    return grid[:, 0]
