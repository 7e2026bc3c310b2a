"""Attention probabilities of chosen token columns, summed into each word's share.

The image itself is still made by ComfyUI's optimized attention (which never materialises the
probabilities). A UNet's cross-attention attends to the prompt alone, so a word's share there is
the plain softmax over the prompt's tokens, which joint_share.text_probabilities computes with a
fused kernel (about the cost of the layer's own attention call, the scores never held in memory).
"""

import torch


def heads_first(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    """[batch, heads, tokens, dim] from [batch, tokens, heads*dim], as ComfyUI's attention splits it."""
    return tokens.unflatten(-1, (heads, -1)).transpose(1, 2)


def word_sums(probabilities: torch.Tensor, word_columns: list[list[int]], columns: list[int]) -> torch.Tensor:
    """[batch, words, pixels]: each word's probabilities summed over its columns (its tokens,
    every occurrence), i.e. the share of attention the word gets."""
    position = {column: index for index, column in enumerate(columns)}
    sums = [probabilities[..., [position[c] for c in word]].sum(dim=-1) for word in word_columns]
    return torch.stack(sums, dim=1)
