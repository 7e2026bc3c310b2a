"""NAG's formula and its placement in a batch (samplers/nag.py), against the formula written out
in tests/nag_reference.py: the fast tier's check of what the model tests prove end to end."""

import pytest
import torch

import nag_reference
from delayed_negative.samplers.nag import ACTIVE_KEY, BranchesApart, NAGSettings, guide_attention, \
    normalized_guidance

SETTINGS = NAGSettings(4.0, 1.3, 0.7)


def outputs(batch=2, tokens=6, channels=8, seed=0):
    return torch.randn(batch, tokens, channels, generator=torch.Generator().manual_seed(seed))


def test_the_formula_matches_the_paper_written_out():
    positive, negative = outputs(seed=1), outputs(seed=2)
    expected = nag_reference.nag_formula(positive, negative, SETTINGS.scale, SETTINGS.tau, SETTINGS.alpha)
    assert torch.allclose(normalized_guidance(positive, negative, SETTINGS), expected, atol=1e-6)


def test_the_norm_is_capped_at_tau_times_the_positives():
    positive, negative = outputs(seed=1), outputs(seed=2)
    guided = normalized_guidance(positive, negative, NAGSettings(10.0, 1.3, 1.0))
    ratio = guided.abs().sum(-1) / positive.abs().sum(-1)
    assert ratio.max() <= 1.3 + 1e-5 and ratio.max() > 1.29  # the cap binds at scale 10


@pytest.mark.parametrize("branches", [[0, 1], [1, 0]])
def test_both_branches_get_the_guided_output_on_the_image_tokens_only(branches):
    out = outputs(batch=4)  # two items per branch
    original = out.clone()
    guided = guide_attention(out.clone(), {ACTIVE_KEY: SETTINGS, "cond_or_uncond": branches}, slice(2, None))
    rows = {branch: slice(2 * i, 2 * i + 2) for i, branch in enumerate(branches)}
    expected = normalized_guidance(original[rows[0], 2:], original[rows[1], 2:], SETTINGS)
    assert torch.equal(guided[rows[0], 2:], expected) and torch.equal(guided[rows[1], 2:], expected)
    assert torch.equal(guided[:, :2], original[:, :2])  # the text tokens are left as they were


def test_heads_first_outputs_are_guided_over_all_heads_channels():
    out = outputs(tokens=5, channels=12)
    options = {ACTIVE_KEY: SETTINGS, "cond_or_uncond": [0, 1]}
    heads_first = out.reshape(2, 5, 3, 4).transpose(1, 2).contiguous()
    guided = guide_attention(heads_first, options, slice(None), token_dim=2)
    assert torch.allclose(guided.transpose(1, 2).reshape(2, 5, 12), guide_attention(out.clone(), options), atol=1e-6)


def test_an_evaluation_not_marked_for_nag_is_left_alone():
    out = outputs()
    assert torch.equal(guide_attention(out.clone(), {"cond_or_uncond": [0, 1]}), out)


def test_a_branch_missing_from_the_batch_says_why():
    with pytest.raises(BranchesApart, match="in one batch"):
        guide_attention(outputs(batch=1), {ACTIVE_KEY: SETTINGS, "cond_or_uncond": [0]})
