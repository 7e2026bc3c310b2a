"""Put normalized attention guidance (nag.py) into a clone of a MODEL, through ComfyUI's hooks.

- UNets (SD1.x, SD2.x, SDXL): on the cross-attention of every transformer block, as the NAG
  paper defines it for UNets, before the layer's output projection: an attn2 patch added at each
  evaluation on top of any other pack's (attention/unet_hooks.py). ComfyUI's own NAGuidance
  (0.33) patches the self-attention output (attn1_output_patch) instead, which on a UNet sees
  the text only through the layers before it.
- DiTs (SD3.x, Flux, Flux.2, Chroma, Qwen-Image, Z-Image, Wan): an attention override, added at each evaluation
  on top of another node's (attention/dit_hooks.py), guides the output of every call where the
  image attends to the text, on the image tokens (the joint families; the whole output of Wan's
  cross-attention; see guided_tokens). On Flux and Chroma that is the tensor ComfyUI's NAGuidance patches.

The hooks act only on evaluations whose transformer_options carry the NAG settings
(nag.ACTIVE_KEY): the delayed-negative guider sets them on the steps where the negative is in
force. Elsewhere they return exactly what would have run without them.
"""

from ..attention.dit_hooks import TextAttentionCall, patch_dit_attention
from ..attention.dit_layout import FAMILIES, family_of
from ..attention.unet_hooks import cross_attention_blocks, patch_unet_cross_attention
from .nag import guide_attention

WRAPPER_KEY = "delayed_negative.nag"


def nag_covers(model) -> bool:
    return bool(cross_attention_blocks(model.get_model_object("diffusion_model"))) or family_of(model) is not None


def with_nag(model):
    """A clone of `model` whose text attention NAG guides when an evaluation asks for it."""
    patched = model.clone()
    blocks = cross_attention_blocks(patched.get_model_object("diffusion_model"))
    if blocks:
        patch_unet_cross_attention(patched, blocks, guiding_patch, WRAPPER_KEY)
    elif family_of(patched) is not None:
        patch_dit_attention(patched, guiding_override, WRAPPER_KEY)
    else:
        raise ValueError(uncovered_message(model))
    return patched


def uncovered_message(model) -> str:
    mapped = ", ".join(name for name, _joint in FAMILIES.values())
    return (f"NAG does not cover this model ({type(model.model).__name__}) yet: it works with SD1.x, SD2.x and "
            f"SDXL UNets and with {mapped} DiT models. Disconnect 'nag' and sample with cfg above 1 instead.")


def guiding_patch(attend):
    """An attn2 patch: what `attend` returns, guided."""
    def patch(q, k, v, extra_options):
        return guide_attention(attend(q, k, v, extra_options), extra_options)

    return patch


def guided_tokens(layout) -> slice:
    """The image's tokens in an image-to-text call: all of a cross-attention's queries; in a joint
    sequence everything after the text (reference images included, as NAGuidance does), but not
    Z-Image's learned pad tokens after the image."""
    if not layout.joint:
        return slice(None)
    if layout.image_padding is not None:
        return slice(layout.image_start, layout.image_start + layout.image_tokens)
    return slice(layout.image_start, None)


def guiding_override(layout, previous=None):
    """An attention override returning what `previous` or ComfyUI's own function returns, guided
    on the image tokens where the image attends to the text. Like the recorder's (dit_hooks.
    observing_override) it keeps the container path of a `previous` that has one."""
    def guided(out, args, kwargs):
        call = TextAttentionCall(args, kwargs)
        if not layout.attends_to_text(call.queries.shape[2], call.keys.shape[2]):
            return out
        heads_first_output = args[7] if len(args) > 7 else kwargs.get("skip_output_reshape", False)
        return guide_attention(out, call.options, guided_tokens(layout), 2 if heads_first_output else 1)

    def override(func, *args, **kwargs):
        out = previous(func, *args, **kwargs) if previous is not None else func(*args, **kwargs)
        return guided(out, args, kwargs)

    if hasattr(previous, "container_function"):
        def from_containers(*args, **kwargs):
            tensors = tuple(container.peek() for container in args[:3])  # kept: the backend takes them
            return guided(previous.container_function(*args, **kwargs), tensors + args[3:], kwargs)

        override.container_function = from_containers
    return override
