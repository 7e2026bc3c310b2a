"""NAG at cfg 1 on the two cfg-1 DiT families mapped last: Flux.2 and Z-Image (Turbo), each a small
in-memory model of ComfyUI's own classes (devtools/models/tiny_dit_models.py), sampled by
KSampler (Delayed Negative) with NAG from step 0.

References, none of them the pack's own output:
- the stock KSampler at cfg 1 (the positive alone): a negative equal to the positive gives it back
  (z- = z+, so the guided attention is z+) up to the rounding of a batch of two against one;
- where NAG acts: ComfyUI's own attention function, called again beside every call without the
  pack's override, gives what the call computed unguided. Only the calls where the image attends
  to the text change, and only on the image's side of them, as ComfyUI's model code lays the joint
  sequence out: Flux.2's text is its conditioning padded in front to 512 tokens, then 16 image
  tokens; Z-Image's caption is padded to 32 tokens, then the 16 image tokens (and 16 pad tokens).
  Z-Image's caption refiner and image refiner (32 tokens each) never change.
On Z-Image ComfyUI batches the two prompts only when their token counts are equal: NAG then says
it needs them in one batch.
"""

import comfy.ldm.flux.math
import comfy.ldm.lumina.model
import nodes
import pytest
import torch

from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.samplers.nag import NAGSettings
from devtools.models.tiny_dit_models import FAMILIES

SEED, STEPS = 5, 3
NAG = NAGSettings(5.0, 1.5, 0.5)  # ComfyUI's NAGuidance defaults
# family: (the module whose attention function the blocks call, its name there, joint sequence length,
# first image token, image tokens)
ATTENTION = {"flux2": (comfy.ldm.flux.math, "optimized_attention", 512 + 16, 512, 16),
             "z_image": (comfy.ldm.lumina.model, "optimized_attention_masked", 32 + 32, 32, 16)}
OVERRIDE = "optimized_attention_override"


@pytest.fixture(scope="module", params=list(ATTENTION), ids=list(ATTENTION))
def family(request):
    spec = FAMILIES[request.param]
    generator = torch.Generator().manual_seed(4)
    prompts = {name: spec.conditioning(generator) for name in ("positive", "negative")}
    return {"name": request.param, "model": spec.build(), "latent": {"samples": torch.zeros(spec.latent_shape)},
            **prompts}


def with_nag(family, negative="negative"):
    return DelayedNegativeKSampler.execute(
        family["model"], SEED, STEPS, 1.0, "euler", "simple", family["positive"], family[negative], family["latent"],
        1.0, 0, -1.0, "step", "empty prompt", nag=NAG).result[0]["samples"]


def positive_alone(family):
    return nodes.KSampler().sample(family["model"], SEED, STEPS, 1.0, "euler", "simple", family["positive"],
                                   family["negative"], family["latent"])[0]["samples"]


def test_a_negative_equal_to_the_positive_gives_the_positive_alone(family):
    reference = positive_alone(family)
    assert (with_nag(family, negative="positive") - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_a_different_negative_changes_the_latent(family):
    reference = positive_alone(family)
    assert (with_nag(family) - reference).abs().max() > 1e-3 * reference.abs().max()


def test_nag_acts_only_on_the_image_side_of_the_calls_where_the_image_attends_to_the_text(family, monkeypatch):
    module, name, joint_length, image_start, image_tokens = ATTENTION[family["name"]]
    host_function, calls = getattr(module, name), []

    def attention(q, k, v, *args, **kwargs):
        out = host_function(q, k, v, *args, **kwargs)
        unguided_options = {key: value for key, value in kwargs["transformer_options"].items() if key != OVERRIDE}
        unguided = host_function(q, k, v, *args, **{**kwargs, "transformer_options": unguided_options})
        calls.append((q.shape[2], (out != unguided).any(-1)))  # [batch, tokens]: which tokens NAG changed
        return out

    monkeypatch.setattr(module, name, attention)
    with_nag(family)
    joint = [changed for length, changed in calls if length == joint_length]
    others = [changed for length, changed in calls if length != joint_length]
    assert len(joint) == STEPS * (2 if family["name"] == "flux2" else 1)  # Flux.2: a double and a single block
    assert len(others) == (2 * STEPS if family["name"] == "z_image" else 0)  # Z-Image's two refiners
    assert not any(changed.any() for changed in others)
    for changed in joint:
        assert not changed[:, :image_start].any()  # the text's tokens (and Z-Image's caption pad tokens)
        assert changed[:, image_start:image_start + image_tokens].any(-1).all()  # both branches' image


def test_z_image_prompts_of_different_lengths_are_said_to_need_one_batch():
    # ComfyUI batches Z-Image's conds only when their token counts are equal (model_base.Lumina2 gives
    # c_crossattn as a CONDRegular and num_tokens as a CONDConstant), and NAG needs both in one batch.
    spec = FAMILIES["z_image"]
    generator = torch.Generator().manual_seed(4)
    family = {"model": spec.build(), "latent": {"samples": torch.zeros(spec.latent_shape)},
              "positive": spec.conditioning(generator),
              "negative": [[torch.randn(1, 20, spec.text_width, generator=generator), {"pooled_output": None}]]}
    with pytest.raises(ValueError, match="NAG needs the positive and the negative prompt in one batch"):
        with_nag(family)
