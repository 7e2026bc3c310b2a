"""The attention call that makes the image, and its log-sum-exp, from one kernel.

A word's exact share of a joint attention is exp(q·k_j·scale − LSE(q)), where LSE runs over every
key (joint_share.py). The fused kernels behind PyTorch's scaled_dot_product_attention compute
that log-sum-exp anyway; PyTorch hands it out from the kernel ops themselves. So where ComfyUI's
attention is its PyTorch attention (`attention_pytorch`, the default on CPU and on most GPUs),
the recorder runs the call through the kernel PyTorch would pick, and gets the image's output and
the LSE together: the share then costs only the products of the image queries with the recorded
text columns, not a second pass over every key.

The output must be the image ComfyUI makes. So the first call of each kind (device, dtype, mask
or none) is checked against ComfyUI's own function, bit for bit; a kind that differs, a function
other than ComfyUI's PyTorch attention (sage, xformers, flash-attn, another node's override), or
a call shape this does not reproduce (batches over ComfyUI's SDP batch limit, grouped-query
attention) falls back to the exact second pass, and the console says once which path runs.
"""

import comfy.ldm.modules.attention as comfy_attention
import torch

from ..clock.notice import LOG

FLASH, EFFICIENT = 1, 2  # torch.nn.attention.SDPBackend values, as torch._fused_sdp_choice returns them


class KernelLSE:
    """Runs attention calls with their LSE where it can, checked once per kind of call."""

    def __init__(self):
        self.checked = {}  # kind -> whether the kernel path is bit-identical to ComfyUI's function
        self.said = set()

    def attention(self, func, args, kwargs):
        """(the call's output, LSE [batch, heads, queries] or None): the output always bit-identical to
        func(*args, **kwargs)."""
        call = PytorchCall.of(func, args, kwargs)
        if call is None:
            name = getattr(func, "__name__", type(func).__name__)
            self.say("fallback", f"ComfyUI attends with {name} here, not its PyTorch attention (the default on "
                                 "NVIDIA GPUs; on a CPU ComfyUI picks sub-quadratic attention unless started with "
                                 "--use-pytorch-cross-attention), or another node overrides it")
            return func(*args, **kwargs), None
        kind = call.kind
        if kind not in self.checked:
            reference = func(*args, **kwargs)
            result = call.run()
            self.checked[kind] = result is not None and torch.equal(result[0], reference)
            if not self.checked[kind]:
                self.say("fallback", f"the kernel's output differed from ComfyUI's on {kind}")
                return reference, None
            self.say("kernel", f"{kind}")
            return result
        if self.checked[kind]:
            result = call.run()
            if result is not None:
                return result
        return func(*args, **kwargs), None

    def say(self, path: str, why: str) -> None:
        if (path, why) in self.said:
            return
        self.said.add((path, why))
        if path == "kernel":
            LOG.info("[Delayed Negative] Attention maps: the joint-attention share comes from the attention "
                     "kernel's log-sum-exp (%s).", why)
        else:
            LOG.info("[Delayed Negative] Attention maps: the joint-attention share takes a second attention "
                     "pass: %s.", why)


def is_pytorch_attention(func) -> bool:
    own = comfy_attention.attention_pytorch
    return func is own or func is getattr(own, "__wrapped__", None)


class PytorchCall:
    """One call of ComfyUI's attention_pytorch, as it would run it: heads first, the mask made 4-D."""

    def __init__(self, q, k, v, heads, mask, skip_reshape, skip_output_reshape, scale):
        self.batch = q.shape[0]
        self.heads_first_out = skip_output_reshape
        if skip_reshape:
            self.dim = q.shape[-1]
        else:
            self.dim = q.shape[-1] // heads
            q, k, v = (t.view(self.batch, -1, heads, self.dim).transpose(1, 2) for t in (q, k, v))
        if mask is not None:
            if mask.ndim == 2:
                mask = mask.unsqueeze(0)
            if mask.ndim == 3:
                mask = mask.unsqueeze(1)
        self.q, self.k, self.v, self.mask, self.scale = q, k, v, mask, scale
        self.heads = q.shape[1]

    @classmethod
    def of(cls, func, args, kwargs):
        if not is_pytorch_attention(func):
            return None
        names = ("q", "k", "v", "heads", "mask", "attn_precision", "skip_reshape", "skip_output_reshape")
        given = dict(zip(names, args)) | {name: kwargs[name] for name in names if name in kwargs}
        if kwargs.get("enable_gqa") or given["q"].shape[0] > comfy_attention.SDP_BATCH_LIMIT:
            return None
        return cls(given["q"], given["k"], given["v"], given["heads"], given.get("mask"),
                   given.get("skip_reshape", False), given.get("skip_output_reshape", False), kwargs.get("scale"))

    @property
    def kind(self) -> str:
        mask = "no mask" if self.mask is None else f"{self.mask.dtype} mask"
        return f"{self.q.device.type} {self.q.dtype}, {mask}"

    def run(self):
        """(output as ComfyUI returns it, LSE [batch, heads, queries] in float32), or None."""
        found = self.kernel()
        if found is None:
            return None
        out, lse = found
        if not self.heads_first_out:
            out = out.transpose(1, 2).reshape(self.batch, -1, self.heads * self.dim)
        return out, lse.float()

    def kernel(self):
        try:
            return self.kernel_ops()
        except RuntimeError:  # a form this PyTorch's kernels refuse: the exact second pass instead
            return None

    def kernel_ops(self):
        q, k, v, mask, scale = self.q, self.k, self.v, self.mask, self.scale
        if mask is not None and mask.dtype == torch.bool:  # as scaled_dot_product_attention converts it
            mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, -torch.inf)
        if q.device.type == "cpu":
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, attn_mask=mask,
                                                                                  scale=scale)
            return out, lse
        choice = int(torch._fused_sdp_choice(q, k, v, mask, 0.0, False, scale))
        if choice == FLASH and mask is None:
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False,
                                                                         scale=scale)[:2]
            return out, lse
        if choice == EFFICIENT:
            out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, mask, True, 0.0, False,
                                                                             scale=scale)[:2]
            return out, lse[..., :q.shape[2]]
        return None
