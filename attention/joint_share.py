"""The exact share of attention the text tokens get in a DiT's joint attention.

In joint attention (SD3's MMDiT, Flux, Qwen-Image) an image token's softmax runs over the text
*and* the image keys, so a word's share of a pixel's attention is

    share(word) = sum over the word's columns j of softmax(q·kᵀ/√d)_j,

with the normaliser over every key of the joint sequence. ComfyUI's attention never hands the
probabilities out (its kernels keep them to themselves, and the image must stay the one they
make), so they are computed here beside it, with the same kind of fused kernel: PyTorch's
scaled_dot_product_attention of the image queries over all keys, whose values are one-hot rows
of the chosen columns (padded to the head width, which keeps PyTorch on its fused path). Its
output is then exactly each chosen column's probability, and the scores are never held in
memory: about the cost of the model's own attention call once more (per head width of columns). For cross-attention (Wan) the keys are the text alone and this is
the plain softmax.

Where the recorder could run the call through a kernel that also gives the softmax's normaliser
(its log-sum-exp, kernel_lse.py), shares_from_lse needs only the chosen columns' scores.
"""

import torch
import torch.nn.functional as F


def text_probabilities(queries: torch.Tensor, keys: torch.Tensor, columns: torch.Tensor,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """[batch, queries, len(columns)]: each chosen key column's probability, averaged over heads.

    queries [batch, heads, queries, dim] and keys [batch, heads, keys, dim] as the attention call
    got them (after RoPE and q/k norms); `columns` index the key axis; `mask` is ComfyUI's
    additive (or boolean keep) attention mask, broadcastable to [batch, heads, queries, keys].
    """
    batch, heads, _count, width = queries.shape
    queries, keys = queries.float(), keys.float()
    if mask is not None:
        mask = as_4d(mask) if mask.dtype == torch.bool else as_4d(mask).float()
    out = []
    for first in range(0, len(columns), width):
        group = columns[first:first + width]
        one_hot = torch.zeros(keys.shape[2], width, device=keys.device, dtype=torch.float32)
        one_hot[group, torch.arange(len(group), device=keys.device)] = 1.0
        values = one_hot.expand(batch, heads, *one_hot.shape)
        probabilities = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
        out.append(probabilities[..., :len(group)].mean(dim=1))
    return torch.cat(out, dim=-1)


def as_4d(mask: torch.Tensor) -> torch.Tensor:
    """ComfyUI's mask shapes ([keys], [queries, keys], [batch, queries, keys]) as [batch, heads, queries, keys]."""
    while mask.ndim < 4:
        mask = mask.unsqueeze(0 if mask.ndim < 3 else 1)
    return mask


def shares_from_lse(queries: torch.Tensor, keys: torch.Tensor, columns: torch.Tensor, lse: torch.Tensor,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """What text_probabilities gives, from the attention kernel's log-sum-exp `lse` [batch, heads,
    queries] of the same call: exp(q·k_j/√d + mask_j − LSE(q)) for the chosen columns j only, so the
    cost is the queries' products with those columns, not a pass over every key."""
    chosen = keys.index_select(2, columns).float()
    scores = torch.matmul(queries.float(), chosen.transpose(-1, -2)) * queries.shape[-1] ** -0.5
    if mask is not None:
        mask = as_4d(mask)[..., columns]
        scores = scores.masked_fill(~mask, -torch.inf) if mask.dtype == torch.bool else scores + mask.float()
    return torch.exp(scores - lse.unsqueeze(-1)).mean(dim=1)
