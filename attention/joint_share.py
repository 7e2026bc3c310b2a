"""The exact share of attention the text tokens get in a DiT's joint attention.

In joint attention (SD3's MMDiT, Flux, Qwen-Image) an image token's softmax runs over the text
*and* the image keys, so a word's share of a pixel's attention is

    share(word) = sum over the word's columns j of exp(q·k_jᵀ/√d − logsumexp(q·k_allᵀ/√d)),

with the normaliser over every key of the joint sequence. ComfyUI's attention never hands that
normaliser out (its kernels keep it to themselves, and the image must stay the one they make), so
it is computed here beside the real attention: one q·kᵀ product of the image queries with all
keys, per block of queries so that memory stays at `SCORES_PER_BLOCK` numbers however large the
image. That is the exact share, at about half the arithmetic of the attention call itself (no
softmax·V). For cross-attention (Wan) the keys are the text alone and this is the plain softmax.
"""

import torch

SCORES_PER_BLOCK = 1 << 24  # 64 MiB of float32 scores at a time


def text_probabilities(queries: torch.Tensor, keys: torch.Tensor, columns: torch.Tensor,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """[batch, queries, len(columns)]: each chosen key column's probability, averaged over heads.

    queries [batch, heads, queries, dim] and keys [batch, heads, keys, dim] as the attention call
    got them (after RoPE and q/k norms); `columns` index the key axis; `mask` is ComfyUI's
    additive (or boolean keep) attention mask, broadcastable to [batch, heads, queries, keys].
    """
    batch, heads, count, dim = queries.shape
    keys = keys.float()
    block = max(1, SCORES_PER_BLOCK // max(1, batch * heads * keys.shape[2]))
    out = []
    for first in range(0, count, block):
        rows = slice(first, min(count, first + block))
        scores = torch.matmul(queries[:, :, rows].float(), keys.transpose(-1, -2)) * dim ** -0.5
        if mask is not None:
            scores = masked(scores, mask, rows)
        normaliser = torch.logsumexp(scores, dim=-1, keepdim=True)
        out.append((scores.index_select(-1, columns) - normaliser).exp().mean(dim=1))
    return torch.cat(out, dim=1)


def masked(scores: torch.Tensor, mask: torch.Tensor, rows: slice) -> torch.Tensor:
    """The scores with ComfyUI's attention mask applied, as its own attention functions apply it."""
    while mask.ndim < 4:
        mask = mask.unsqueeze(0 if mask.ndim == 2 else 1)
    if mask.shape[-2] > 1:
        mask = mask[..., rows, :]
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, float("-inf"))
    return scores + mask.float()
