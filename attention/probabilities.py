"""Attention probabilities of chosen token columns, computed beside the real attention.

The image itself is still made by ComfyUI's optimized attention (which never materialises the
probabilities); here we recompute softmax(q·kᵀ/√d) over the *whole* token axis, keep only the
columns of the words being recorded and average the heads, so the extra memory is one
[batch, heads, pixels, tokens] score tensor per layer call, freed at once.
"""

import torch


def column_probabilities(q: torch.Tensor, k: torch.Tensor, heads: int, columns: torch.Tensor) -> torch.Tensor:
    """[batch, pixels, len(columns)]: the head-averaged probability of each chosen key column.

    q: [batch, pixels, heads*dim], k: [batch, tokens, heads*dim], as ComfyUI's attention gets them.
    """
    batch, pixels, inner = q.shape
    dim = inner // heads
    q_heads = q.float().reshape(batch, pixels, heads, dim).transpose(1, 2)
    k_heads = k.float().reshape(batch, -1, heads, dim).transpose(1, 2)
    scores = torch.matmul(q_heads, k_heads.transpose(-1, -2)) * dim ** -0.5
    return scores.softmax(dim=-1).index_select(-1, columns).mean(dim=1)


def word_sums(probabilities: torch.Tensor, word_columns: list[list[int]], columns: list[int]) -> torch.Tensor:
    """[batch, words, pixels]: each word's probabilities summed over its columns (its tokens,
    every occurrence), i.e. the share of attention the word gets."""
    position = {column: index for index, column in enumerate(columns)}
    sums = [probabilities[..., [position[c] for c in word]].sum(dim=-1) for word in word_columns]
    return torch.stack(sums, dim=1)
