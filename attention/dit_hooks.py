"""Show every text attention call of a DiT to an observer, through ComfyUI's documented route.

ComfyUI passes `transformer_options` into its optimized attention for the DiT families (0.3.75
and 0.33 alike), and the attention functions hand each call to
`transformer_options["optimized_attention_override"](func, *args, **kwargs)` when one is set.
That slot holds one function: ComfyUI's ModelAttentionBackend (0.33) and other packs write it
too, and a value set on the model's options by the node that runs last would win. So the
override is set at each evaluation, by an APPLY_MODEL wrapper, in a copy of the options ComfyUI
is about to run with: it returns exactly what would have run without it (the other node's
override, else ComfyUI's own function: the image stays bit-identical, the other node keeps
working, in either order) and shows the call's queries and keys to the observer, with the
evaluation's token layout (dit_layout.py). Calls that are not the image attending to the text
(image self-attention, a Wan image-prompt call, Z-Image's caption and image refiners) are left
alone.

A limit no override can lift: after 0.33 a layer may carry its own attention module (newer
models' blocks do; a checkpoint's metadata can give it e.g. int8 attention). ComfyUI runs an
installed override instead of it and does not hand the module to the override, so on such a
layer the recorded run uses ComfyUI's own function, as with ModelAttentionBackend (see
tests/test_upstream_changes.py).
"""

from comfy.patcher_extension import WrappersMP

from .dit_layout import TokenLayout, evaluation_layout
from .kernel_lse import KernelLSE

WRAPPER_KEY = "delayed_negative.dit_attention"
OVERRIDE = "optimized_attention_override"


class TextAttentionCall:
    """The queries, keys and mask of one attention call, heads first: [batch, heads, tokens, dim]."""

    def __init__(self, args, kwargs):
        queries, keys = args[0], args[1]
        heads = args[3] if len(args) > 3 else kwargs["heads"]
        self.mask = args[4] if len(args) > 4 else kwargs.get("mask")
        if not (args[6] if len(args) > 6 else kwargs.get("skip_reshape", False)):
            queries, keys = (heads_first(tensor, heads) for tensor in (queries, keys))
        self.queries, self.keys = queries, keys
        self.options = kwargs.get("transformer_options") or {}
        self.lse = None  # [batch, heads, queries]: the kernel's log-sum-exp of each query, where it gave one


def heads_first(tensor, heads: int):
    batch, tokens, inner = tensor.shape
    return tensor.reshape(batch, tokens, heads, inner // heads).transpose(1, 2)


def observe_dit_attention(patched, observe, key: str) -> None:
    """On the clone `patched` (a mapped DiT family, see dit_layout.FAMILIES), call
    `observe(call: TextAttentionCall, layout: TokenLayout)` at every image-to-text attention call,
    through an APPLY_MODEL wrapper named `key`."""
    kernel = KernelLSE()
    patch_dit_attention(patched, lambda layout, previous: observing_override(observe, layout, previous, kernel), key)


def patch_dit_attention(patched, make_override, key: str) -> None:
    """On the clone `patched`, install `make_override(layout, previous)` as the attention override
    of each evaluation, through an APPLY_MODEL wrapper named `key`: `layout` is the evaluation's
    TokenLayout, `previous` the override that was there (another node's), or None."""
    layout_of = evaluation_layout(patched)

    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},
                    **kwargs):
        if c_crossattn is not None:
            latent = (x.shape[2] if x.ndim == 5 else 1, x.shape[-2], x.shape[-1])
            override = make_override(layout_of(c_crossattn.shape[1], latent), transformer_options.get(OVERRIDE))
            transformer_options = {**transformer_options, OVERRIDE: override}
        return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)

    patched.add_wrapper_with_key(WrappersMP.APPLY_MODEL, key, apply_model)


def observing_override(observe, layout: TokenLayout, previous=None, kernel: KernelLSE | None = None):
    """An attention override returning what `previous` (another node's override, e.g. ComfyUI's
    ModelAttentionBackend) or ComfyUI's own function returns, and showing the image-to-text calls
    to `observe` on the side. Keyword arguments (a `preferred_attention` a host leaves in them
    included) go on untouched.

    Where q, k and v come wrapped in AttentionTensorContainers (0.33's MiniMax, every layer after
    0.33), ComfyUI unwraps them before it calls an override, unless the override has a
    `container_function`: `previous` keeps the container path it has (ModelAttentionBackend
    forwards the one of a backend that frees q, k and v as it reads them), and the recorder does
    not add one where `previous` has none.

    With a `kernel` (KernelLSE) and no `previous`, an image-to-text call runs through the kernel
    that also gives its log-sum-exp (kernel_lse.py), handed to `observe` as `call.lse`: the image
    is the one ComfyUI's function makes, and the share needs no second pass.
    """
    def show(args, kwargs):
        call = TextAttentionCall(args, kwargs)
        if layout.attends_to_text(call.queries.shape[2], call.keys.shape[2]):
            observe(call, layout)

    def override(func, *args, **kwargs):
        if previous is None and kernel is not None:
            call = TextAttentionCall(args, kwargs)
            if layout.attends_to_text(call.queries.shape[2], call.keys.shape[2]):
                out, call.lse = kernel.attention(func, args, kwargs)
                observe(call, layout)
                return out
            return func(*args, **kwargs)
        out = previous(func, *args, **kwargs) if previous is not None else func(*args, **kwargs)
        show(args, kwargs)
        return out

    if hasattr(previous, "container_function"):
        def from_containers(*args, **kwargs):
            tensors = tuple(container.peek() for container in args[:3])  # kept: the backend takes them
            out = previous.container_function(*args, **kwargs)
            show(tensors + args[3:], kwargs)
            return out

        override.container_function = from_containers
    return override
