"""Where the image already matches the negative prompt: the signal of the automatic start.

The paper (arXiv 2406.02965) finds that a negative prompt acts once the image has formed what
it names. While the negative is not yet in use, its keys are still known: each cross-attention
layer's to_k of a conditioning that does not change during sampling. So at every positive-branch
cross-attention call we ask, per pixel, what share of the attention the negative prompt would
get if it sat beside the positive prompt in one softmax:

    share = sum_j exp(q·k_neg_j/√d) / (sum_i exp(q·k_pos_i/√d) + sum_j exp(q·k_neg_j/√d))
          = sigmoid(logsumexp(q·k_negᵀ/√d) − logsumexp(q·k_posᵀ/√d))

averaged over heads and layers, at the latent's resolution. The negative's first column (the
start token, the same for every prompt) is left out so that only what the negative says counts.
No extra model evaluation: the image queries are the ones the positive branch computes anyway,
and the negative's keys are one small projection per layer and run.
"""

import torch

from .unet_hooks import cross_attention_blocks, cross_attention_module, observe_unet_attention

WRAPPER_KEY = "delayed_negative.negative_watch"


class NegativeWatch:
    """The negative's share maps of the positive branch, per step: {step: [batch, height, width]}."""

    def __init__(self):
        self.negative_context = None  # [1, tokens, width]: the negative's first cond
        self.active = False  # watching (until the start is chosen)
        self.keys = {}  # layer -> the negative's keys on the device, for the current run
        self.sums = {}
        self.counts = {}
        self.step = None
        self.positive_uuids = set()  # the positive prompt's conds (ComfyUI's uuids), set by the guider

    def begin_run(self):
        self.keys, self.sums, self.counts, self.step, self.active = {}, {}, {}, None, True

    def begin_evaluation(self, step: int):
        self.step = step

    def steps_seen(self) -> list[int]:
        return list(self.sums)

    def pop(self, step: int) -> torch.Tensor | None:
        """[batch, height, width]: the step's share map, averaged over layers and evaluations; forgotten."""
        if step not in self.sums:
            return None
        return self.sums.pop(step) / self.counts.pop(step)

    def add(self, q, k, heads, extra_options, to_k):
        """One cross-attention call: add the positive rows' share map (q, k as attention gets them)."""
        chunks = extra_options.get("cond_or_uncond", [])
        positive = self.positive_chunk(chunks, extra_options.get("uuids") or [])
        if not self.active or self.step is None or positive is None or q.shape[0] % len(chunks):
            return
        batch = q.shape[0] // len(chunks)
        height, width = extra_options["activations_shape"][-2:]
        latent_size = tuple(extra_options["original_shape"][-2:])
        rows = slice(positive * batch, (positive + 1) * batch)
        layer = (*extra_options["block"], extra_options.get("block_index", 0))
        if layer not in self.keys:
            context = self.negative_context.to(device=k.device, dtype=k.dtype)
            self.keys[layer] = to_k(context)[:, 1:]
        share = negative_share(q[rows], k[rows], self.keys[layer], heads).reshape(batch, 1, height, width)
        if (height, width) != latent_size:
            share = torch.nn.functional.interpolate(share, size=latent_size, mode="bilinear", align_corners=False)
        share = share[:, 0].float()
        if self.step in self.sums and self.sums[self.step].shape == share.shape:
            self.sums[self.step] += share
            self.counts[self.step] += 1
        else:
            self.sums[self.step], self.counts[self.step] = share, 1

    def positive_chunk(self, chunks: list, uuids: list) -> int | None:
        """The batch chunk of the positive prompt, by its uuid where the guider told them: another
        node's evaluation of the unconditional cond alone (Self-Attention Guidance) is chunk 0 too."""
        if self.positive_uuids and len(uuids) == len(chunks):
            return next((index for index, uuid in enumerate(uuids) if uuid in self.positive_uuids), None)
        return chunks.index(0) if 0 in chunks else None


def negative_share(q, k_positive, k_negative, heads: int) -> torch.Tensor:
    """[batch, pixels]: the negative's share of one joint softmax over both prompts, head-averaged."""
    batch, pixels, inner = q.shape
    dim = inner // heads

    def scores(keys):
        keys = keys.float().expand(batch, -1, -1).reshape(batch, -1, heads, dim).transpose(1, 2)
        return torch.matmul(queries, keys.transpose(-1, -2)) * dim ** -0.5

    queries = q.float().reshape(batch, pixels, heads, dim).transpose(1, 2)
    gap = scores(k_negative).logsumexp(dim=-1) - scores(k_positive).logsumexp(dim=-1)
    return torch.sigmoid(gap).mean(dim=1)


def watch_negative(model, watch: NegativeWatch):
    """A clone of `model` whose cross-attention also feeds `watch`; the image is bit-identical."""
    patched = model.clone()
    diffusion_model = patched.get_model_object("diffusion_model")
    blocks = cross_attention_blocks(diffusion_model)
    if not blocks:
        raise ValueError("timing_unit 'auto' watches the UNet's cross-attention, and this model has none (it "
                         "works with SD1.x, SD2.x and SDXL). Pick the start yourself: set timing_unit to 'step' "
                         "and use the KSampler Sweep (Delayed Negative) to compare starts.")

    def observe(q, k, heads, extra_options, lse=None):
        attn2 = cross_attention_module(diffusion_model, extra_options["block"], extra_options.get("block_index", 0))
        watch.add(q, k, heads, extra_options, attn2.to_k)

    observe_unet_attention(patched, blocks, observe, WRAPPER_KEY)
    return patched
