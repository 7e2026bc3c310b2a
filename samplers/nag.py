"""Normalized attention guidance (NAG): a negative prompt for models sampled at cfg 1.

At cfg 1 classifier-free guidance has no unconditional branch, so a negative prompt does
nothing. NAG (Chen et al. 2025, arXiv 2505.21179) guides inside the model instead: in the
layers where the image attends to the text, the attention output with the positive prompt z+
and with the negative z- (the same image queries) give

    guided = z+ * scale - z- * (scale - 1)
    guided = guided * min(|guided|_1, tau * |z+|_1) / |guided|_1     (per token, over channels)
    z      = guided * alpha + z+ * (1 - alpha)

The delayed-negative guider evaluates the positive and the negative in one batch on the steps
where the negative is in force (ComfyUI's `cond_or_uncond` says which batch items are which),
and the model's hooks (nag_model.py) put z in place of both branches' attention output on the
image tokens: both branches then carry the same image from layer to layer, so z- is the
negative's attention with the positive's queries, as the paper defines it, and the prediction is
the positive's. On the other steps the positive is evaluated alone.
"""

from dataclasses import dataclass

import torch

POSITIVE, NEGATIVE = 0, 1  # ComfyUI's cond_or_uncond values: the guider passes the negative as uncond
ACTIVE_KEY = "delayed_negative_nag"  # transformer_options: the NAG settings of an evaluation that uses them


@dataclass(frozen=True)
class NAGSettings:
    """What the NAG Settings node says (ComfyUI's NAGuidance defaults)."""

    scale: float = 5.0
    tau: float = 1.5
    alpha: float = 0.5

    def check(self) -> None:
        if self.scale < 1.0:
            raise ValueError(f"nag_scale is {self.scale:g}: below 1 it guides towards the negative prompt. "
                             "Use 1 for no effect, 3-7 as usual.")
        if self.tau < 1.0:
            raise ValueError(f"nag_tau is {self.tau:g}: it caps how far the guided attention may grow, "
                             "as a multiple of the positive's, so it is 1 or more (usually 1.5-2.5).")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"nag_alpha is {self.alpha:g}: it blends the guided attention with the positive's, "
                             "from 0 (no effect) to 1 (the guided attention alone).")


def normalized_guidance(positive: torch.Tensor, negative: torch.Tensor, settings: NAGSettings) -> torch.Tensor:
    """z from z+ and z- ([..., tokens, channels]), by the formula in the module docstring."""
    guided = positive * settings.scale - negative * (settings.scale - 1.0)
    positive_norm = torch.norm(positive, p=1, dim=-1, keepdim=True).clamp_min(1e-6)
    guided_norm = torch.norm(guided, p=1, dim=-1, keepdim=True).clamp_min(1e-6)
    ratio = guided_norm / positive_norm
    guided = guided * (torch.minimum(ratio, torch.full_like(ratio, settings.tau)) / ratio)
    return guided * settings.alpha + positive * (1.0 - settings.alpha)


class BranchesApart(ValueError):
    """ComfyUI evaluated the positive and the negative in separate batches: NAG cannot pair them."""


def guide_attention(out: torch.Tensor, options: dict, image_tokens: slice = slice(None),
                    token_dim: int = 1) -> torch.Tensor:
    """An attention output [batch, tokens, channels] (tokens at `token_dim`) with NAG applied to
    `image_tokens` of both branches, when the evaluation's `options` (transformer_options) ask for
    it; otherwise `out` as it is."""
    settings = options.get(ACTIVE_KEY)
    if settings is None:
        return out
    branches = list(options.get("cond_or_uncond") or [])
    if POSITIVE not in branches or NEGATIVE not in branches:
        raise BranchesApart(
            "NAG needs the positive and the negative prompt in one batch, but ComfyUI evaluated them apart: "
            "their conditionings cannot be stacked (token counts too different: shorten the longer prompt, "
            "or make them the same length), or the batch did not fit in memory (a smaller image or batch).")
    per_branch = out.shape[0] // len(branches)
    positive_rows = slice(per_branch * branches.index(POSITIVE), per_branch * (branches.index(POSITIVE) + 1))
    negative_rows = slice(per_branch * branches.index(NEGATIVE), per_branch * (branches.index(NEGATIVE) + 1))
    if token_dim == 2:  # [batch, heads, tokens, dim]: heads joined into channels and back
        heads = out.shape[1]
        joined = out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)
        guided = guide_attention(joined, options, image_tokens, 1)
        return guided.reshape(out.shape[0], out.shape[2], heads, -1).transpose(1, 2)
    guided = normalized_guidance(out[positive_rows, image_tokens], out[negative_rows, image_tokens], settings)
    out[positive_rows, image_tokens] = guided
    out[negative_rows, image_tokens] = guided
    return out
