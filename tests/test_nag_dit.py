"""The delayed negative at cfg 1 through NAG on the DiT families, and with ComfyUI's own NAGuidance.

On each family's small model (devtools/models/tiny_dit_models.py), against stock KSampler
Advanced passes (cfg 1: the positive alone up to the start, then a model guided from the
negative on):
- a reference written in this test: an attention override that applies the NAG formula
  (nag_reference.nag_formula) to the image tokens of every call where the image attends to the
  text, found from the test's own count of image tokens; equal up to float rounding;
- where the host has ComfyUI's NAGuidance (0.33) and it acts on the family (Flux, Chroma: the
  attention output it patches is the one the pack guides): bit for bit.
And ComfyUI's NAGuidance on the model with the pack at cfg 1 (no 'nag'): no refusal, the
negative from the start on, bit for bit the same stock chain.
"""

import math

import pytest
import torch
from devtools.models.tiny_dit_models import FAMILIES as MAPPED, TEXT_TOKENS, Family, tiny_flux
from devtools.models.tiny_models import tiny_sd15

import nag_reference
import stock
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler, DelayedNegativeKSamplerAdvanced
from delayed_negative.samplers.nag import NAGSettings

# Flux dev is sampled at cfg 1 with its guidance embedding (FluxGuidance; 3.5 when none is set).
FAMILIES = {**MAPPED, "flux_dev": Family("Flux dev (guidance embedding)", lambda: tiny_flux(guidance_embed=True),
                                         (1, 16, 8, 8), 48, 32)}
SEED, STEPS, START = 5, 4, 2
NAG = NAGSettings(5.0, 1.5, 0.5)
CORE_NAG_FAMILIES = ("flux", "flux_dev", "flux2", "chroma")  # where NAGuidance's attn1_output_patch is called (0.33)

try:
    from comfy_extras.nodes_nag import NAGuidance
except ImportError:  # 0.3.75 has no NAGuidance
    NAGuidance = None
needs_core_nag = pytest.mark.skipif(NAGuidance is None, reason="this host has no NAGuidance (added after 0.3.75)")


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    spec = FAMILIES[request.param]
    generator = torch.Generator().manual_seed(0)
    return request.param, spec, spec.build(), spec.conditioning(generator), spec.conditioning(generator)


def latent_of(spec):
    return {"samples": torch.zeros(spec.latent_shape)}


def image_tokens(spec, model) -> int:
    patch = model.get_model_object("diffusion_model").patch_size
    patch = (1, patch, patch) if isinstance(patch, int) else (1, *patch) if len(patch) == 2 else tuple(patch)
    frames = spec.latent_shape[2] if len(spec.latent_shape) == 5 else 1
    return math.prod(math.ceil(size / step) for size, step in zip((frames, *spec.latent_shape[-2:]), patch))


def joint_sequence(spec, model, tokens):
    """(where the image tokens are in a joint call, the joint call's length or None for any length
    over the image's): Z-Image pads the caption and the image each to a multiple of its
    pad_tokens_multiple (text first); the other joint families end with the image."""
    multiple = getattr(model.get_model_object("diffusion_model"), "pad_tokens_multiple", None)
    if not multiple:
        return slice(-tokens, None), None
    text = math.ceil(TEXT_TOKENS / multiple) * multiple
    return slice(text, text + tokens), text + math.ceil(tokens / multiple) * multiple


def reference_nag_model(spec, model):
    """The model with NAG as an override written here: on calls whose outputs cover the image tokens
    (in a joint sequence, see joint_sequence; the whole output of a cross-attention to the text), when
    the batch holds both branches, both get the formula's result; evaluated at cfg 1 like NAGuidance."""
    tokens = image_tokens(spec, model)
    image, joint_length = joint_sequence(spec, model, tokens)
    previous = model.model_options.get("transformer_options", {}).get("optimized_attention_override")

    def override(func, *args, **kwargs):
        out = previous(func, *args, **kwargs) if previous is not None else func(*args, **kwargs)
        options = kwargs.get("transformer_options") or {}
        branches = options.get("cond_or_uncond") or []
        q, k = args[0], args[1]
        query_count, key_count = (q.shape[2], k.shape[2]) if kwargs.get("skip_reshape") else (q.shape[1], k.shape[1])
        joint = query_count == key_count > tokens and joint_length in (None, query_count)
        cross = query_count == tokens and key_count != tokens
        if not (joint or cross) or sorted(branches) != [0, 1]:
            return out
        half = out.shape[0] // 2
        rows = {branch: slice(half * i, half * (i + 1)) for i, branch in enumerate(branches)}
        where = image if joint else slice(None)
        guided = nag_reference.nag_formula(out[rows[0], where], out[rows[1], where], NAG.scale, NAG.tau, NAG.alpha)
        out = out.clone()
        out[rows[0], where] = guided
        out[rows[1], where] = guided
        return out

    patched = model.clone()
    patched.model_options["transformer_options"]["optimized_attention_override"] = override
    patched.model_options["disable_cfg1_optimization"] = True
    return patched


def stock_chain(plain, guided, positive, negative, spec):
    """Stock KSampler Advanced: the positive alone at cfg 1 up to START, then the guided model."""
    first = stock.ksampler_advanced(plain, "enable", SEED, STEPS, 1.0, "euler", "simple", positive, negative,
                                    latent_of(spec), 0, START, "enable")
    return stock.ksampler_advanced(guided, "disable", SEED, STEPS, 1.0, "euler", "simple", positive, negative, first,
                                   START, 10000, "disable")["samples"]


def pack_chain(model, positive, negative, spec, nag=NAG):
    """The pack's KSampler Advanced (Delayed Negative), in the same two passes."""
    first = DelayedNegativeKSamplerAdvanced.execute(model, "enable", SEED, STEPS, 1.0, "euler", "simple", positive,
                                                    negative, latent_of(spec), 0, START, "enable", START, -1, "step",
                                                    "no guidance", nag=nag)[0]
    return DelayedNegativeKSamplerAdvanced.execute(model, "disable", SEED, STEPS, 1.0, "euler", "simple", positive,
                                                   negative, first, START, 10000, "disable", START, -1, "step",
                                                   "no guidance", nag=nag)[0]["samples"]


def test_each_family_equals_the_formula_written_as_an_override(family):
    name, spec, model, positive, negative = family
    reference = stock_chain(model, reference_nag_model(spec, model), positive, negative, spec)
    plain = stock.ksampler(model, SEED, STEPS, 1.0, "euler", "simple", positive, negative, latent_of(spec))["samples"]
    effect = (reference - plain).abs().max()
    assert effect > 1e-6 * plain.abs().max(), f"{name}: NAG must change the latent, else this proves nothing"
    assert (pack_chain(model, positive, negative, spec) - reference).abs().max() < 0.01 * effect


def test_each_family_with_the_positive_as_negative_is_the_positive_alone(family):
    name, spec, model, positive, _negative = family
    same = DelayedNegativeKSampler.execute(model, SEED, STEPS, 1.0, "euler", "simple", positive, positive,
                                           latent_of(spec), 1.0, 0, -1, "step", "no guidance", nag=NAG)[0]["samples"]
    plain = stock.ksampler(model, SEED, STEPS, 1.0, "euler", "simple", positive, positive, latent_of(spec))["samples"]
    assert (same - plain).abs().max() <= 1e-5 * plain.abs().max()


@needs_core_nag
@pytest.mark.parametrize("name", CORE_NAG_FAMILIES)
def test_flux_flux2_and_chroma_equal_core_nag_guidance_bit_for_bit(name):
    spec = FAMILIES[name]
    model = spec.build()
    generator = torch.Generator().manual_seed(0)
    positive, negative = spec.conditioning(generator), spec.conditioning(generator)
    core = NAGuidance.execute(model, NAG.scale, NAG.alpha, NAG.tau)[0]
    reference = stock_chain(model, core, positive, negative, spec)
    plain = stock.ksampler(model, SEED, STEPS, 1.0, "euler", "simple", positive, negative, latent_of(spec))["samples"]
    assert not torch.equal(reference, plain)
    assert torch.equal(pack_chain(model, positive, negative, spec), reference)


@needs_core_nag
@pytest.mark.parametrize("name", ["sd15", "flux"])
def test_core_nag_guidance_on_the_model_works_at_cfg1_from_the_start(name):
    """NAGuidance on the model, the pack's sampler at cfg 1 without 'nag': no refusal; the positive alone
    before the start, NAGuidance from it on: the stock chain bit for bit."""
    if name == "sd15":
        spec, model = None, tiny_sd15()
        generator = torch.Generator().manual_seed(0)
        positive, negative = ([[torch.randn(1, 77, 768, generator=generator), {}]] for _ in range(2))
        latent = stock.empty_latent()
    else:
        spec = FAMILIES[name]
        model = spec.build()
        generator = torch.Generator().manual_seed(0)
        positive, negative = spec.conditioning(generator), spec.conditioning(generator)
        latent = latent_of(spec)
    core = NAGuidance.execute(model, NAG.scale, NAG.alpha, NAG.tau)[0]
    first = stock.ksampler_advanced(model, "enable", SEED, STEPS, 1.0, "euler", "simple", positive, negative, latent,
                                    0, START, "enable")
    reference = stock.ksampler_advanced(core, "disable", SEED, STEPS, 1.0, "euler", "simple", positive, negative,
                                        first, START, 10000, "disable")["samples"]
    ours = [latent]
    for add_noise, begin, end, leftover in (("enable", 0, START, "enable"), ("disable", START, 10000, "disable")):
        ours.append(DelayedNegativeKSamplerAdvanced.execute(core, add_noise, SEED, STEPS, 1.0, "euler", "simple",
                                                            positive, negative, ours[-1], begin, end, leftover, START,
                                                            -1, "step", "no guidance")[0])
    assert torch.equal(ours[-1]["samples"], reference)
    with pytest.raises(ValueError, match="guide twice"):
        DelayedNegativeKSampler.execute(core, SEED, STEPS, 1.0, "euler", "simple", positive, negative, latent, 1.0,
                                        START, -1, "step", "no guidance", nag=NAG)


@pytest.mark.parametrize("name", ["flux", "wan21"])
def test_another_nodes_attention_override_keeps_working_under_nag(name):
    spec = FAMILIES[name]
    model = spec.build()
    generator = torch.Generator().manual_seed(0)
    positive, negative = spec.conditioning(generator), spec.conditioning(generator)
    calls = []
    other = model.clone()

    def override(func, *args, **kwargs):
        calls.append(len((kwargs.get("transformer_options") or {}).get("cond_or_uncond") or []))
        return func(*args, **kwargs) * 1.5

    other.model_options["transformer_options"]["optimized_attention_override"] = override
    guided = pack_chain(other, positive, negative, spec)
    assert 2 in calls, "the other override must see NAG's batch of two branches"
    reference = stock_chain(other, reference_nag_model(spec, other), positive, negative, spec)
    effect = (guided - pack_chain(model, positive, negative, spec)).abs().max()
    assert effect > 1e-6 * reference.abs().max(), "the other override must change the result"
    assert (guided - reference).abs().max() < 0.01 * effect
